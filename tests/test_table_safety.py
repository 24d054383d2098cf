"""Tables that would hurt the server: XLSX and Parquet bombs, cell ceilings, formulas in XLSX
downloads, and cells holding lists or objects."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
import zipfile

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT

from mlwidget import BadRequest, MLModel, PayloadTooLarge, limits
from mlwidget.tables import read_table, to_bytes

SHEET_XML = (
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<dimension ref="{dimension}"/><sheetData>{rows}</sheetData></worksheet>'
)


def xlsx_with_sheet(rows: str, dimension: str = "A1:B2") -> bytes:
    """A real openpyxl workbook whose worksheet XML is replaced by ``rows`` (inside
    <sheetData>), to say what Excel's writers never would."""
    book = openpyxl.Workbook()
    book.active.append(["a", "b"])
    buf = io.BytesIO()
    book.save(buf)
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = SHEET_XML.format(dimension=dimension, rows=rows).encode()
            dst.writestr(info.filename, data)
    return out.getvalue()


def far_cell_xlsx() -> bytes:
    book = openpyxl.Workbook()
    book.active["A1"] = "a"
    book.active["XFD1048576"] = 1
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


@pytest.fixture
def max_cells():
    """Set a low ceiling for one test; the default comes back after it."""
    before = limits.current()
    yield lambda n: limits.configure(max_table_cells=n)
    limits.configure(before)


# ------------------------------------------------------------------------------ XLSX bombs

BOMB_SCRIPT = """
import json, resource, sys
try:  # a regression must not take the test machine down with it
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
except (ValueError, OSError, AttributeError):
    pass
from mlwidget import limits
from mlwidget.tables import read_table
content = open(sys.argv[1], "rb").read()
if len(sys.argv) > 2:
    limits.configure(max_table_cells=int(sys.argv[2]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_table(content)
    status, message = 200, ""
except Exception as exc:
    status, message = getattr(exc, "status", 500), str(exc)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"status": status, "message": message, "kb": grown}))
"""


def read_elsewhere(content: bytes, tmp_path, max_cells: int | None = None) -> dict:
    """read_table(content) in a subprocess with at most 3 GB of address space (so a regression
    cannot take the test machine down): its status and message, and how many KB its peak
    memory grew by. A reader that walked the cells a bomb claims (billions) would not finish:
    the subprocess's timeout bounds that hang, it measures nothing."""
    path = tmp_path / "body.bin"
    path.write_bytes(content)
    args = [sys.executable, "-c", BOMB_SCRIPT, str(path)]
    run = subprocess.run(
        args + ([str(max_cells)] if max_cells else []),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert run.stdout.strip(), run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_far_cell_xlsx_is_413_and_small(tmp_path):
    """A 5 KB XLSX whose only far cell is XFD1048576 used to take the process to GBs."""
    content = far_cell_xlsx()
    assert len(content) < 10_000
    answer = read_elsewhere(content, tmp_path)
    assert answer["status"] == 413, answer
    assert "1,048,576 rows x 16,384 columns" in answer["message"]
    assert "at most 50,000,000 cells" in answer["message"]
    assert "max_table_cells" in answer["message"]
    assert answer["kb"] < 150 * 1024  # peak memory grew by less than 150 MB


@pytest.mark.parametrize(
    "rows, dimension",
    [
        # the <dimension> header lies small: the far cell still counts
        ('<row r="1"><c r="A1"><v>1</v></c></row>'
         '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>', "A1:B2"),
        # no header at all; "$" references, as openpyxl reads them
        ('<row r="1"><c r="A1"><v>1</v></c><c r="$XFD$1"><v>1</v></c></row>'
         '<row r="900000"><c r="A900000"><v>1</v></c></row>', ""),
        # empty rows far away cost as much to walk through as full ones
        ('<row r="1"><c r="A1"><v>1</v></c></row><row r="2000000000"/>', "A1"),
        # no r attributes: cells and rows are numbered one after the other
        ("<row>" + "<c><v>1</v></c>" * 60 + "</row>" + "<row/>" * 30, "A1"),
        # the same row over and over: each one still costs a step
        ('<row r="1"><c r="A1"><v>1</v></c></row>' * 2500, "A1"),
    ],
)  # fmt: skip
def test_xlsx_extent_comes_from_the_cells_present(rows, dimension, tmp_path):
    answer = read_elsewhere(xlsx_with_sheet(rows, dimension), tmp_path, max_cells=1000)
    assert answer["status"] == 413, answer
    assert "at most 1,000 cells" in answer["message"]


def test_xlsx_header_claiming_a_huge_sheet_is_not_trusted_either():
    rows = '<row r="1"><c r="A1" t="inlineStr"><is><t>x</t></is></c></row>'
    rows += '<row r="2"><c r="A2"><v>5</v></c></row>'
    frame = read_table(xlsx_with_sheet(rows, "A1:XFD1048576"))
    assert frame.to_dict("records") == [{"x": 5}]


def test_xlsx_zip_bomb_is_413_before_unpacking(tmp_path):
    """A part that unpacks ~1000 times its size (e.g. shared strings) is refused unread."""
    content = xlsx_with_sheet('<row r="1"><c r="A1"><v>1</v></c></row>')
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(content)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info.filename))
        padding = zipfile.ZipInfo("xl/padding.xml")
        padding.compress_type = zipfile.ZIP_DEFLATED
        with dst.open(padding, "w", force_zip64=True) as part:
            chunk = b" " * 2**20
            for _ in range(200):
                part.write(chunk)
    body = out.getvalue()
    assert len(body) < 2 * 2**20
    with pytest.raises(PayloadTooLarge, match=r"that unpacks to 200 MB") as err:
        read_table(body)
    assert "CSV or Parquet" in str(err.value)


def test_normal_xlsx_reads_as_pandas_reads_it(tmp_path):
    frame = pd.DataFrame(
        {
            "name": ["a", None, "c"],
            "n": [1, 2, 3],
            "x": [1.5, float("nan"), -2.0],
            "when": pd.to_datetime(["2024-01-01", "2024-02-01", None]),
            "flag": [True, False, True],
        }
    )
    buf = io.BytesIO()
    with pd.ExcelWriter(buf) as writer:
        frame.to_excel(writer, index=False, sheet_name="first")
        frame.head(1).to_excel(writer, index=False, sheet_name="second")
    content = buf.getvalue()
    pd.testing.assert_frame_equal(read_table(content), pd.read_excel(io.BytesIO(content)))
    titanic = (ROOT / "notebooks" / "titanic.csv").read_bytes()
    content, _, _ = to_bytes(read_table(titanic), "xlsx")
    pd.testing.assert_frame_equal(read_table(content), pd.read_excel(io.BytesIO(content)))


def test_the_table_ceiling_is_a_checked_setting(max_cells):
    assert limits.current().max_table_cells == 50_000_000
    assert max_cells(10).max_table_cells == 10
    assert len(read_table(b"a,b\n1,2\n3,4\n")) == 2  # 6 cells
    for bad in (0, -1, 2.5, "10", True):
        with pytest.raises(BadRequest, match="positive integer"):
            limits.configure(max_table_cells=bad)
    assert limits.current().max_table_cells == 10  # a refused value changed nothing


# ----------------------------------------------------- the same ceiling for the other formats


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet", "xlsx"])
def test_every_format_has_the_cell_ceiling(fmt, max_cells):
    frame = pd.DataFrame({"a": range(100), "b": range(100)})
    content, _, _ = to_bytes(frame, fmt)
    rows = 101 if fmt == "xlsx" else 100  # a sheet's header row is one of its rows
    max_cells(rows * 2)
    assert len(read_table(content)) == 100
    max_cells(rows * 2 - 1)
    with pytest.raises(PayloadTooLarge) as err:
        read_table(content)
    assert err.value.status == 413
    assert f"at most {rows * 2 - 1} cells" in str(err.value)
    assert f"{rows} rows x 2 columns" in str(err.value)


def test_parquet_text_repeated_through_a_dictionary_is_413(tmp_path):
    """50 KB of Parquet: one 1 MB text, 100,000 rows pointing at it (100 GB decoded)."""
    import numpy as np

    text = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(100_000, dtype="int32")), pa.array(["x" * 2**20])
    )
    body = io.BytesIO()
    pq.write_table(pa.table({"s": text}), body, store_schema=False)  # read back as plain text
    assert len(body.getvalue()) < 100_000
    answer = read_elsewhere(body.getvalue(), tmp_path)
    assert answer["status"] == 413, answer
    assert "unpacks to at least 98 GB" in answer["message"]
    assert answer["kb"] < 150 * 1024
    small = pa.DictionaryArray.from_arrays(pa.array([0, 1, 0], pa.int32()), pa.array(["a", "b"]))
    body = io.BytesIO()
    pq.write_table(pa.table({"s": small, "n": [1, 2, 3]}), body, store_schema=False)
    assert read_table(body.getvalue()).to_dict("list") == {"s": ["a", "b", "a"], "n": [1, 2, 3]}


def test_parquet_ceiling_comes_from_its_metadata(max_cells):
    """A constant column compresses to almost nothing: the row count is checked unread."""
    body = io.BytesIO()
    pq.write_table(pa.table({"x": pa.repeat(pa.scalar(0, pa.int8()), 5_000_000)}), body)
    assert len(body.getvalue()) < 100_000
    max_cells(1_000_000)
    with pytest.raises(PayloadTooLarge, match="5,000,000 rows x 1 columns"):
        read_table(body.getvalue())


# --------------------------------------------------------------------- formulas in downloads

TRICKY = ["=1+1", '=HYPERLINK("http://example.com","x")', "-2+3", "+1", "@SUM(A1)", "#N/A"]


def test_xlsx_download_writes_text_never_formulas():
    frame = pd.DataFrame({"text": TRICKY, "=cmd|' /C calc'!A0": range(len(TRICKY))})
    content, _, _ = to_bytes(frame, "xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active  # not data_only
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert not [cell.coordinate for cell in cells if cell.data_type in ("f", "e")]
    header = [cell.value for cell in sheet[1]]
    assert header == ["text", "=cmd|' /C calc'!A0"]
    assert [cell.value for cell in sheet["A"][1:]] == TRICKY
    for cell in [*sheet[1], *sheet["A"]]:
        assert cell.data_type == "s" and isinstance(cell.value, str)
    assert [cell.value for cell in sheet["B"][1:]] == list(range(len(TRICKY)))
    raw = zipfile.ZipFile(io.BytesIO(content)).read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in raw and b"<f " not in raw


# ----------------------------------------------------------------- lists or objects in cells

NESTED = [
    ([{"a": [1, 2], "y": 0}, {"a": [3], "y": 1}], "'a'"),
    ([{"a": {"x": 1}, "b": {"z": 2}, "y": 0}], "'a', 'b'"),
    ({"a": [[1, 2], [3]], "y": [0, 1]}, "'a'"),
]


@pytest.mark.parametrize("records, columns", NESTED)
def test_nested_cells_are_400_naming_the_columns(records, columns):
    for source in (records, json.dumps(records).encode()):
        with pytest.raises(BadRequest) as err:
            read_table(source)
        assert err.value.status == 400
        assert f"lists or objects in column(s) {columns}" in str(err.value)
        assert "one value in each cell" in str(err.value)


def test_nested_cells_from_parquet_and_frames_are_400():
    body = io.BytesIO()
    pq.write_table(pa.table({"tags": [[1, 2], [3]], "y": [0, 1]}), body)
    with pytest.raises(BadRequest, match=r"column\(s\) 'tags'"):
        read_table(body.getvalue())
    with pytest.raises(BadRequest, match=r"column\(s\) 'a'"):
        read_table(pd.DataFrame({"a": [None, (1, 2)], "y": [0, 1]}))
    mixed = read_table(pd.DataFrame({"a": ["x", 1, None, 2.5], "y": [0, 1, 0, 1]}))
    assert mixed["a"].tolist()[:2] == ["x", 1]  # mixed scalars are fine


def test_nested_cells_through_mlmodel_are_400_not_500(tmp_path):
    rows = [{"a": i % 3, "b": float(i), "y": i % 2} for i in range(20)]
    for records, _ in NESTED[:2]:
        with pytest.raises(BadRequest, match="lists or objects"):
            MLModel("m", data=records, class_="LogisticRegression", target_col="y", store=tmp_path)
        with pytest.raises(BadRequest, match="lists or objects"):
            frame = pd.DataFrame(records)
            MLModel("m", data=frame, class_="LogisticRegression", target_col="y", store=tmp_path)
    model = MLModel("m", data=rows, class_="LogisticRegression", target_col="y", store=tmp_path)
    bad = [{"a": [1, 2], "b": 1.0, "y": 0}, {"a": {"x": 1}, "b": 2.0, "y": 1}]
    for call in (model.retrain, model.predict, model.predict_proba, model.append, model.score):
        with pytest.raises(BadRequest, match=r"column\(s\) 'a'"):
            call(bad)
    assert model.info()["rows"] == 20  # nothing was written
    assert model.predict([{"a": 1, "b": 2.0}]) in ([0], [1])


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_error_messages_carry_no_server_paths(tmp_path, fmt, max_cells):
    content, _, ext = to_bytes(pd.DataFrame({"a": range(600), "b": range(600)}), fmt)
    path = tmp_path / "secret-folder" / f"big{ext}"
    path.parent.mkdir()
    path.write_bytes(content)
    max_cells(1000)
    for source in (path, {"url": str(path)}):
        with pytest.raises(PayloadTooLarge) as err:
            read_table(source)
        assert "secret-folder" not in str(err.value) and str(tmp_path) not in str(err.value)
        assert not re.search(r"Traceback|File \"", str(err.value))


# ------------------------------------------------------- answers a model builds (predictions)

FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]


@pytest.fixture
def jp_server_config(store_dir, titanic_csv) -> dict:
    from rest_helpers import titanic_server_config

    return titanic_server_config(store_dir, titanic_csv, executor="thread")


async def polynomial(jp_fetch, degree: int) -> None:
    """The attack's steps: PUT the titanic model's class to PolynomialFeatures(degree), then
    retrain it with the data."""
    from rest_helpers import TITANIC, call

    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="PUT", params={"_model": ""},
        body=json.dumps({"class": "PolynomialFeatures", "degree": degree}),
    )  # fmt: skip
    assert reply.code == 200, reply.text
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST", params={"_action": "retrain"},
        body=TITANIC.read_bytes(), headers={"Content-Type": "text/csv"},
    )  # fmt: skip
    assert reply.code == 200, reply.text


async def predict_every_way(jp_fetch, rows: pd.DataFrame) -> dict:
    """The replies of a POST predict, a GET (the first row) and a V2 infer of ``rows``."""
    from rest_helpers import call

    post = await call(
        jp_fetch, "mlhandler", "titanic", method="POST", params={"_action": "predict"},
        body=rows.to_csv(index=False), headers={"Content-Type": "text/csv"},
    )  # fmt: skip
    first = {k: "" if v != v else str(v) for k, v in rows.iloc[0].items()}
    get = await call(jp_fetch, "mlhandler", "titanic", params=first)
    grid = [[None if v != v else v for v in row] for row in rows.astype(object).values.tolist()]
    infer = {
        "inputs": [
            {
                "name": "rows",
                "datatype": "BYTES",
                "shape": [len(rows), len(FEATURES)],
                "data": grid,
                "parameters": {"columns": FEATURES},
            }
        ]
    }
    v2 = await call(
        jp_fetch, "mlhandler", "v2", "models", "titanic", "infer", method="POST",
        body=json.dumps(infer),
    )  # fmt: skip
    return {"POST": post, "GET": get, "V2": v2}


async def test_a_transformers_output_is_held_to_max_table_cells(jp_fetch, store_dir):
    """PolynomialFeatures(degree=50) on Titanic's 18 columns gives 12,736,262,814,039,336
    columns a row: a predict of 10 rows was a 500 (MemoryError, asking for 905 PiB), on GET,
    POST and V2 alike. Now each is a 413 naming max_table_cells, before anything is built."""
    from rest_helpers import assert_clean_error, call, stored

    await polynomial(jp_fetch, 50)
    rows = pd.read_csv(ROOT / "notebooks" / "titanic.csv")[FEATURES].head(10)
    before = stored(store_dir)
    for face, reply in (await predict_every_way(jp_fetch, rows)).items():
        data = assert_clean_error(reply, 413, "max_table_cells", "12,736,262,814,039,336 columns")
        assert "PolynomialFeatures" in data["error"] and "fewer columns" in data["error"], face
    # (info() never compiles the fast path: the predictions above did)
    info = (await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})).json()
    assert info["predict_path"] == "pipeline"  # the fast path declines transformers
    assert "only classifiers and regressors" in info["predict_path_reason"]
    # as a job (_wait=false): the job fails with the same words
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST",
        params={"_action": "predict", "_wait": "false"},
        body=rows.to_csv(index=False), headers={"Content-Type": "text/csv"},
    )  # fmt: skip
    assert reply.code == 202, reply.text
    for _ in range(300):
        job = await call(jp_fetch, "mlhandler", "titanic", params={"_job": reply.json()["job"]})
        if job.json()["status"] not in ("queued", "running"):
            break
        await asyncio.sleep(0.1)
    assert job.json()["status"] == "failed", job.text
    assert "max_table_cells" in job.json()["error"] and "12,736,262,814,039,336" in job.text
    assert stored(store_dir) == before


async def test_a_transformer_under_the_ceiling_still_predicts(jp_fetch, ceilings):
    """degree=2 gives 190 columns a row: 10 rows predict on every face; with the ceiling
    lowered under 10 x 190 cells they are a 413 saying how many rows fit."""
    await polynomial(jp_fetch, 2)
    rows = pd.read_csv(ROOT / "notebooks" / "titanic.csv")[FEATURES].head(10)
    replies = await predict_every_way(jp_fetch, rows)
    assert all(reply.code == 200 for reply in replies.values()), replies
    post = replies["POST"].json()
    assert len(post) == 10 and {len(row) for row in post} == {190}
    assert replies["GET"].json() == post[:1]
    v2 = replies["V2"].json()["outputs"][0]
    assert v2["shape"][0] == 10 and v2["data"] == post

    from rest_helpers import assert_clean_error

    ceilings(max_table_cells=1000)  # 5 rows x 190 columns fit, 10 do not
    replies = await predict_every_way(jp_fetch, rows)
    for face in ("POST", "V2"):
        assert_clean_error(replies[face], 413, "max_table_cells", "10 rows x 190 columns",
                           "at most 5 rows")  # fmt: skip
    assert replies["GET"].code == 200  # one row: 190 cells


@pytest.mark.parametrize(
    "estimator",
    ["PolynomialFeatures", "SplineTransformer", "PCA", "RBFSampler", "Nystroem",
     "StandardScaler", "KBinsDiscretizer", "RandomTreesEmbedding"],
)  # fmt: skip
def test_every_transformers_answer_is_held_to_the_ceiling(estimator, tmp_path, max_cells):
    """Whether the width is declared (n_output_features_, n_components_, ...) or learned from
    one row (KBinsDiscretizer says nothing), the ceiling is the answer's real size."""
    from mlwidget.answer_limits import declared_width

    rows = [{"a": i % 7, "b": float(i) ** 0.5, "c": i % 3} for i in range(60)]
    model = MLModel("t", data=rows, class_=estimator, store=tmp_path, executor="thread")
    width = len(model.predict(rows[:1])[0])
    declared = declared_width(model.estimator)
    assert declared in (None, width)
    if estimator in ("PolynomialFeatures", "PCA", "RBFSampler", "StandardScaler"):
        assert declared == width
    max_cells(10 * width)
    assert len(model.predict(rows[:10])) == 10
    with pytest.raises(PayloadTooLarge, match=rf"11 rows x {width:,} columns") as err:
        model.predict(rows[:11])
    assert "max_table_cells" in str(err.value) and "at most 10 rows" in str(err.value)


def test_running_out_of_memory_while_predicting_is_413(tmp_path, monkeypatch):
    """Whatever the ceiling lets through, a MemoryError while building an answer is a 413
    naming max_table_cells, never a bare MemoryError (a 500 over REST)."""
    from sklearn.pipeline import Pipeline

    rows = [{"a": i % 7, "b": float(i), "y": i % 2} for i in range(40)]
    model = MLModel(
        "m", data=rows, class_="LogisticRegression", target_col="y", store=tmp_path,
        executor="thread",
    )  # fmt: skip
    model.fast_path = False

    def exhausted(self, *args, **kwargs):
        raise MemoryError("Unable to allocate 905. PiB")

    monkeypatch.setattr(Pipeline, "predict", exhausted)
    monkeypatch.setattr(Pipeline, "predict_proba", exhausted)
    for call in (model.predict, model.predict_proba):
        with pytest.raises(PayloadTooLarge, match="ran out of memory") as err:
            call(rows)
        assert "max_table_cells" in str(err.value) and "40 rows" in str(err.value)
