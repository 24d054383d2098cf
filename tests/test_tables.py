"""Every way a table arrives, format sniffing, SQL sources and the Gramex YAML loader."""

from __future__ import annotations

import io
import sqlite3

import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER

from mlwidget import BadRequest, MLModel, UnsupportedFormat
from mlwidget.options import load_yaml
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
