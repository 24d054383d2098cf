"""Every way a table arrives, format sniffing, SQL sources and the Gramex YAML loader."""

from __future__ import annotations

import io
import sqlite3

import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER

from mlwidget import BadRequest, MLModel, UnsupportedFormat
from mlwidget.options import load_yaml
from mlwidget.sources import source_warnings
from mlwidget.tables import format_of, from_query, read_table, to_bytes


@pytest.fixture
def frame(titanic_csv) -> pd.DataFrame:
    return pd.read_csv(titanic_csv).head(20)


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx", "parquet"])
def test_bytes_round_trip_with_and_without_hints(frame, fmt):
    content, mime, ext = to_bytes(frame, fmt)
    for hints in ({"fmt": fmt}, {"content_type": mime}, {"filename": "x" + ext}, {}):
        back = read_table(content, **hints)
        assert list(back.columns) == list(frame.columns), hints
        assert len(back) == 20
        assert back["Name"].tolist() == frame["Name"].tolist()


def test_json_shapes():
    records = b'[{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]'
    columns = b'{"a": [1, 2], "b": ["x", "y"]}'
    one = b'{"a": 1, "b": "x"}'
    assert read_table(records)["a"].tolist() == [1, 2]
    assert read_table(columns)["b"].tolist() == ["x", "y"]
    assert read_table(one).to_dict("records") == [{"a": 1, "b": "x"}]
    # form-encoded content type (curl -d @file.json) still sniffs as JSON
    assert len(read_table(records, content_type="application/x-www-form-urlencoded")) == 2


@pytest.mark.parametrize(
    "content, kwargs, error, status",
    [
        (b'[{"a": 1}', {}, "valid JSON", 400),
        (b"[1, 2]", {}, "non-object items", 400),
        (b'{"a": [1, 2], "b": [1]}', {}, "equal length", 400),
        (b"\x00\x01\x02binary", {}, "CSV, JSON, XLSX or Parquet", 415),
        (b"PK\x03\x04garbage", {}, "valid XLSX", 400),
        (b"", {}, "empty body", 400),
        (b"a,b\n1,2", {"content_type": "image/png", "filename": "x.png"}, "x.png", 415),
    ],
)
def test_bad_bodies(content, kwargs, error, status):
    with pytest.raises((BadRequest, UnsupportedFormat), match=error) as err:
        read_table(content, **kwargs)
    assert err.value.status == status


def test_format_precedence():
    assert format_of(b"a,b\n1,2", "application/json") == "json"
    assert format_of(b"a,b\n1,2", None, "t.xlsx") == "xlsx"
    assert format_of(b"a,b\n1,2") == "csv"


def test_from_query():
    frame = from_query({"Sex": ["male", "female"], "Age": ["22", ""], "_action": ["predict"]})
    assert frame.columns.tolist() == ["Sex", "Age"]
    assert frame["Age"].iloc[0] == "22" and frame["Age"].isna().iloc[1]
    with pytest.raises(BadRequest, match="same number of times"):
        from_query({"Sex": ["male", "female"], "Age": ["22"]})
    with pytest.raises(BadRequest, match="got none"):
        from_query({"_model": [""]})


def test_sql_source_trains(tmp_path, titanic_csv, store_dir):
    db = tmp_path / "titanic.db"
    with sqlite3.connect(db) as conn:
        pd.read_csv(titanic_csv).to_sql("passengers", conn, index=False)
    source = {"url": f"sqlite:///{db}", "table": "passengers"}
    assert len(read_table(source)) == 891
    query = {"url": f"sqlite:///{db}", "query": "SELECT * FROM passengers WHERE Pclass = 3"}
    assert len(read_table(query)) == 491
    model = MLModel("sql", data=source, store=store_dir, **GUIDE_OPTIONS)
    assert model.predict(GUIDE_PASSENGER) == [0]
    assert model.info()["options"]["data"]["url"] == "(database)"  # no credentials shown
    with pytest.raises(BadRequest, match="database"):
        read_table({"url": f"sqlite:///{db}", "table": "missing"})


def test_file_paths(tmp_path, frame):
    for fmt in ("csv", "json", "xlsx", "parquet"):
        content, _, ext = to_bytes(frame, fmt)
        path = tmp_path / f"t{ext}"
        path.write_bytes(content)
        assert len(read_table(path)) == 20
        assert len(read_table(str(path))) == 20
    with pytest.raises(BadRequest, match="does not exist"):
        read_table(tmp_path / "missing.csv")


GUIDE_YAML = """
url:
  mlhandler/tutorial:
    pattern: /$YAMLURL/ml
    handler: MLHandler
    template: $YAMLPATH/template.html
    kwargs:
      xsrf_cookies: false
      data: $YAMLPATH/titanic.csv
      model:
        class: LogisticRegression
        path: $YAMLPATH/titanic.pkl
        target_col: Survived
        exclude: [PassengerId, Ticket, Cabin, Name]
        cats: [Embarked, SibSb, Parch, Pclass, Sex]
  other:
    pattern: /$YAMLURL/other
    handler: FormHandler
"""


def test_gramex_yaml(tmp_path, titanic_csv, store_dir):
    app = tmp_path / "data"  # titanic_csv lives here
    (app / "gramex.yaml").write_text(GUIDE_YAML)
    entries = load_yaml(app / "gramex.yaml", root_dir=tmp_path)
    assert len(entries) == 1
    entry = entries[0]
    assert entry["name"] == "mlhandler-tutorial"
    assert entry["pattern"] == "/data/ml"
    opts = entry["options"]
    assert opts["data"] == str(titanic_csv)
    assert opts["template"] == str(app / "template.html")
    assert opts["model"]["path"] == str(app / "titanic.pkl")
    model = MLModel(entry["name"], store=store_dir, **opts)
    assert model.predict(GUIDE_PASSENGER) == [0]
    assert (app / "titanic.pkl").is_file()
    warnings = " ".join(model.info()["warnings"])
    assert "xsrf_cookies" in warnings and "SibSb" in warnings
    # At the server's root, $YAMLURL is empty.
    assert load_yaml(app / "gramex.yaml", root_dir=app)[0]["pattern"] == "/ml"


def test_gramex_data_variable(tmp_path, store_dir):
    (tmp_path / "g.yaml").write_text(
        "url:\n  m:\n    handler: MLHandler\n    pattern: /m\n"
        "    kwargs:\n      model: {path: $GRAMEXDATA/m.pkl}\n"
    )
    entry = load_yaml(tmp_path / "g.yaml")[0]
    assert entry["options"]["model"]["path"] == str(store_dir.parent / "m.pkl")


def test_read_table_from_records_and_frames():
    assert len(read_table([GUIDE_PASSENGER, GUIDE_PASSENGER])) == 2
    df = pd.DataFrame([GUIDE_PASSENGER])
    copy = read_table(df)
    copy.loc[0, "Age"] = 99
    assert df.loc[0, "Age"] == 22  # the caller's frame is not touched
    csv = io.BytesIO()
    df.to_csv(csv, index=False)
    assert read_table(csv.getvalue()).loc[0, "Sex"] == "male"


# ------------------------------------------------------------------------- CSV delimiters


@pytest.mark.parametrize("sep", [";", "\t", "|", ","])
def test_csv_is_parsed_with_its_own_delimiter(sep):
    rows = [["Name", "Age", "City"], ["Ann", "22", "Paris, FR"], ["Bob", "", "Rome"]]
    quoted = [[f'"{v}"' if ("," in v and sep == ",") else v for v in row] for row in rows]
    content = "\n".join(sep.join(row) for row in quoted).encode()
    frame = read_table(content, content_type="text/csv")
    assert frame.columns.tolist() == ["Name", "Age", "City"]
    assert frame["City"].tolist() == ["Paris, FR", "Rome"]
    assert frame["Age"].iloc[0] == 22 and frame["Age"].isna().iloc[1]
    assert read_table(content).columns.tolist() == ["Name", "Age", "City"]  # sniffed as CSV


def test_comma_csv_with_semicolons_or_tabs_in_its_text_stays_comma(titanic_csv):
    content = b'id,note,tag\n1,"a;b;c",x\n2,d;e,y\n3,"f\tg",z\n'
    frame = read_table(content)
    assert frame.columns.tolist() == ["id", "note", "tag"]
    assert frame["note"].tolist() == ["a;b;c", "d;e", "f\tg"]
    titanic = read_table(titanic_csv.read_bytes())
    pd.testing.assert_frame_equal(titanic, pd.read_csv(titanic_csv))
    assert titanic.loc[0, "Name"] == "Braund, Mr. Owen Harris"
    semicolons = pd.read_csv(titanic_csv).to_csv(sep=";", index=False).encode()
    pd.testing.assert_frame_equal(read_table(semicolons), pd.read_csv(titanic_csv))


def test_one_column_csv_is_one_column():
    frame = read_table(b"note\nhello; world\nplain\n", content_type="text/csv")
    assert frame.columns.tolist() == ["note"] and frame["note"].iloc[0] == "hello; world"


# ------------------------------------------------------------------ Gramex's data: {url: ...}


def test_data_url_reads_files(tmp_path, titanic_csv, frame):
    assert len(read_table({"url": str(titanic_csv)})) == 891
    plain = tmp_path / "passengers"  # no extension: ext says what it is
    plain.write_bytes(frame.to_json(orient="records").encode())
    assert read_table({"url": str(plain), "ext": "json"})["Name"].tolist() == frame["Name"].tolist()
    odd = tmp_path / "passengers.dat"
    odd.write_bytes(titanic_csv.read_bytes())
    assert len(read_table({"url": odd, "ext": "csv"})) == 891
    content, _, _ = to_bytes(frame, "parquet")
    (tmp_path / "t.parquet").write_bytes(content)
    assert len(read_table({"url": str(tmp_path / "t.parquet")})) == 20
    with pytest.raises(UnsupportedFormat, match="data.ext") as err:
        read_table({"url": str(plain), "ext": "hdf"})
    assert err.value.status == 415
    with pytest.raises(BadRequest, match="'missing.csv' does not exist") as err:
        read_table({"url": str(tmp_path / "missing.csv")})
    assert str(tmp_path) not in str(err.value)


def test_data_url_xlsx_sheet_name(tmp_path, frame):
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as writer:
        frame.head(3).to_excel(writer, index=False, sheet_name="first")
        frame.to_excel(writer, index=False, sheet_name="passengers")
    assert len(read_table({"url": str(path)})) == 3
    assert len(read_table({"url": str(path), "sheet_name": "passengers"})) == 20
    assert len(read_table({"url": str(path), "sheet_name": 1, "ext": "xlsx"})) == 20
    with pytest.raises(BadRequest, match="'first', 'passengers'"):
        read_table({"url": str(path), "sheet_name": "nope"})


def test_data_url_database_and_warnings(tmp_path, titanic_csv, store_dir):
    db = tmp_path / "titanic.db"
    with sqlite3.connect(db) as conn:
        pd.read_csv(titanic_csv).to_sql("passengers", conn, index=False)
    source = {"url": f"sqlite:///{db}", "table": "passengers", "config_dir": "/x"}
    assert len(read_table(source)) == 891
    warnings = source_warnings(source)
    assert len(warnings) == 1 and "config_dir" in warnings[0]
    with pytest.raises(BadRequest, match="data.table or data.query"):
        read_table({"url": f"sqlite:///{db}"})
    spec = {"url": str(titanic_csv), "ext": "csv", "transform": "data.head()", "table": "t"}
    assert len(read_table(spec)) == 891  # read as the file holds it
    warned = " ".join(source_warnings(spec))
    assert "data.transform is ignored" in warned and "data.table is ignored" in warned
    assert "ext" not in warned
    model = MLModel("gramex", data={"url": str(titanic_csv)}, store=store_dir, **GUIDE_OPTIONS)
    assert model.predict(GUIDE_PASSENGER) == [0]


def test_records_with_a_url_column_stay_records():
    assert source_warnings({"Sex": "male"}) == []
    assert read_table({"url": "http://example.com", "clicks": 3}).to_dict("records") == [
        {"url": "http://example.com", "clicks": 3}
    ]
    assert source_warnings({"url": "http://example.com", "clicks": 3}) == []
    assert len(read_table([{"url": "x.csv"}, {"url": "y.csv"}])) == 2
