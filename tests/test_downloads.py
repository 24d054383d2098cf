"""Files the product writes from cells a user sent: a text cell that a spreadsheet would open as
a formula (``=``, ``+``, ``-``, ``@``, tab, carriage return) is guarded in CSV (a leading ``'``)
and XLSX (Excel's quote prefix); numbers, JSON answers and other text stay as they were."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from conftest import GUIDE_PASSENGER
from rest_helpers import call, titanic_server_config

from mlwidget.table_writers import formula_like
from mlwidget.tables import to_bytes

NAME = "titanic"
JSON = {"Content-Type": "application/json"}
# what a spreadsheet would run, and text that merely looks alike
FORMULAS = [
    "=1+1",
    '=HYPERLINK("http://example.com","x")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1)",
    "\t=1+1",
    "\r=1+1",
]
PLAIN = ["Braund, Mr. Owen", "-3.5", "+7", "1e5", "a=b", "#N/A", ""]


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv)


def rows(names: list[str], fare: float = -3.5) -> list[dict]:
    return [{**GUIDE_PASSENGER, "Name": name, "Fare": fare} for name in names]


def csv_cells(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


def column(table: list[list[str]], name: str) -> list[str]:
    i = table[0].index(name)
    return [row[i] for row in table[1:]]


def test_formula_like_is_text_that_starts_a_formula_and_is_no_number():
    assert all(formula_like(v) for v in FORMULAS)
    assert not any(formula_like(v) for v in PLAIN)
    assert not any(formula_like(v) for v in (-3.5, -1, None, float("nan"), b"=1"))


async def test_csv_predictions_guard_formula_cells(jp_fetch):
    body = json.dumps(rows(FORMULAS + PLAIN))
    reply = await call(jp_fetch, "mlhandler", NAME, method="POST", body=body, headers=JSON,
                       params={"_action": "predict", "_format": "csv"})  # fmt: skip
    assert reply.code == 200, reply.text
    table = csv_cells(reply.body)
    assert column(table, "Name") == ["'" + v for v in FORMULAS] + PLAIN
    assert set(column(table, "Fare")) == {"-3.5"}  # a negative number stays a number


async def test_csv_predictions_of_a_query_guard_formula_cells(jp_fetch):
    params = {**GUIDE_PASSENGER, "Name": "=1+1", "Fare": "-3.5", "_format": "csv"}
    reply = await call(jp_fetch, "mlhandler", NAME, params=params)
    assert reply.code == 200, reply.text
    table = csv_cells(reply.body)
    assert column(table, "Name") == ["'=1+1"]
    assert column(table, "Fare") == ["-3.5"]


async def test_xlsx_predictions_guard_formula_cells(jp_fetch):
    body = json.dumps(rows(FORMULAS + PLAIN))
    reply = await call(jp_fetch, "mlhandler", NAME, method="POST", body=body, headers=JSON,
                       params={"_action": "predict", "_format": "xlsx"})  # fmt: skip
    assert reply.code == 200, reply.text
    sheet = openpyxl.load_workbook(io.BytesIO(reply.body)).active
    header = [cell.value for cell in sheet[1]]
    cells = sheet[openpyxl.utils.get_column_letter(header.index("Name") + 1)][1:]
    sent = [v.replace("\r", "\n") for v in FORMULAS]  # XML reads a CR as a line feed
    assert [c.value for c in cells[: len(FORMULAS)]] == sent  # the text as sent
    assert all(c.data_type == "s" and c.quotePrefix for c in cells[: len(FORMULAS)])
    assert not any(c.quotePrefix for c in cells[len(FORMULAS) :])
    fares = sheet[openpyxl.utils.get_column_letter(header.index("Fare") + 1)][1:]
    assert {(c.value, c.data_type, c.quotePrefix) for c in fares} == {(-3.5, "n", False)}


async def test_json_answers_are_never_guarded(jp_fetch):
    body = json.dumps(rows(FORMULAS))
    reply = await call(jp_fetch, "mlhandler", NAME, method="POST", body=body, headers=JSON,
                       params={"_action": "predict", "_format": "records"})  # fmt: skip
    assert reply.code == 200, reply.text
    assert [r["Name"] for r in reply.json()] == FORMULAS


async def test_training_data_downloads_guard_formula_cells(jp_fetch):
    extra = {"Survived": 1, "PassengerId": 1000, "Ticket": "@T", "Cabin": None}
    appended = [{**r, **extra} for r in rows(FORMULAS[:3] + ["-3.5"])]
    reply = await call(jp_fetch, "mlhandler", NAME, method="POST", body=json.dumps(appended),
                       headers=JSON, params={"_action": "append"})  # fmt: skip
    assert reply.code == 200, reply.text
    reply = await call(jp_fetch, "mlhandler", NAME, params={"_cache": "", "_format": "csv"})
    assert reply.code == 200, reply.text
    table = csv_cells(reply.body)
    assert column(table, "Name")[-4:] == ["'" + v for v in FORMULAS[:3]] + ["-3.5"]
    assert column(table, "Fare")[-4:] == ["-3.5"] * 4
    reply = await call(jp_fetch, "mlhandler", NAME, params={"_cache": "", "_format": "xlsx"})
    assert reply.code == 200, reply.text
    frame = pd.read_excel(io.BytesIO(reply.body))
    assert frame["Name"].tolist()[-4:] == FORMULAS[:3] + ["-3.5"]
    sheet = openpyxl.load_workbook(io.BytesIO(reply.body)).active
    guarded = [c.value for row in sheet.iter_rows() for c in row if c.quotePrefix]
    assert guarded == [*FORMULAS[0:1], "@T", *FORMULAS[1:2], "@T", *FORMULAS[2:3], "@T", "@T"]
    reply = await call(jp_fetch, "mlhandler", NAME, params={"_cache": ""})
    assert [r["Name"] for r in reply.json()][-4:] == FORMULAS[:3] + ["-3.5"]


def test_headers_categories_and_mixed_columns_are_guarded_too():
    frame = pd.DataFrame(
        {
            "=cmd": pd.Categorical(["=1+1", "x", "=1+1"]),
            "mixed": ["@A1", -2, None],
            "num": [-1.5, 2.0, -3.0],
        }
    )
    table = csv_cells(to_bytes(frame, "csv")[0])
    assert table == [
        ["'=cmd", "mixed", "num"],
        ["'=1+1", "'@A1", "-1.5"],
        ["x", "-2", "2.0"],
        ["'=1+1", "", "-3.0"],
    ]
    assert frame.columns[0] == "=cmd" and frame.iloc[0, 0] == "=1+1"  # the frame is untouched
    sheet = openpyxl.load_workbook(io.BytesIO(to_bytes(frame, "xlsx")[0])).active
    assert [c.quotePrefix for c in sheet[1]] == [True, False, False]
    assert [(c.value, c.quotePrefix) for c in sheet["B"][1:]] == [
        ("@A1", True),
        (-2, False),
        (None, False),
    ]


def test_a_carriage_return_inside_a_cell_never_starts_a_row():
    """Written bare, a CR split the row: ``x<CR>=1+1`` opened as a row whose cell was a formula."""
    frame = pd.DataFrame({"a": ["x\r=1+1", "y"], "b": [1, 2]})
    assert csv_cells(to_bytes(frame, "csv")[0]) == [["a", "b"], ["x\r=1+1", "1"], ["y", "2"]]
    plain = to_bytes(pd.DataFrame({"a": ["x"], "b": [1]}), "csv")[0]
    assert plain == b"a,b\nx,1\n"  # without a CR, lines end as before


# ------------------------------------------------- the GET _format values the document lists

# What GET answers each _format with: (the query beside it, the answer's media type)
GET_FORMATS = {
    "json": ({"_cache": ""}, "application/json"),
    "records": ({"_cache": ""}, "application/json"),
    "csv": ({"_cache": ""}, "text/csv"),
    "xlsx": ({"_cache": ""}, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "parquet": ({"_cache": ""}, "application/vnd.apache.parquet"),
    "table": (GUIDE_PASSENGER, "application/json"),
    "html": ({"_openapi": ""}, "text/html"),
    "joblib": ({"_download": ""}, "application/octet-stream"),
    "mlflow": ({"_download": ""}, "application/zip"),
}


async def test_the_document_lists_exactly_the_get_formats_the_server_answers(jp_fetch):
    """The API page (?_openapi&_format=html) and the model files (?_download&_format=joblib or
    mlflow) were answered but missing from GET's documented _format values."""
    doc = (await call(jp_fetch, "mlhandler", NAME, params={"_openapi": ""})).json()
    get = doc["paths"][f"/mlhandler/{NAME}"]["get"]
    enum = next(p for p in get["parameters"] if p["name"] == "_format")["schema"]["enum"]
    assert sorted(enum) == sorted(GET_FORMATS)
    documented = set(get["responses"]["200"]["content"])
    for fmt, (query, ctype) in GET_FORMATS.items():
        reply = await call(jp_fetch, "mlhandler", NAME, params={**query, "_format": fmt})
        assert reply.code == 200, (fmt, reply.text)
        assert reply.headers["Content-Type"].split(";")[0] == ctype, fmt
        assert ctype in documented, fmt
    for query in ({"_cache": ""}, GUIDE_PASSENGER, {"_download": ""}):
        reply = await call(jp_fetch, "mlhandler", NAME, params={**query, "_format": "pdf"})
        assert reply.code == 400, (query, reply.text)  # a value outside the list is refused


def test_the_widgets_download_link_quotes_formulas_too():
    import base64

    from mlwidget.widgets.upload import download_link

    link = download_link(
        pd.DataFrame({"Name": ["=1+1", "ok"], "Fare": [-3.5, 2.0]}), "x.csv", 10**6
    )
    data = base64.b64decode(link.split("base64,")[1].split('"')[0]).decode()
    assert data.splitlines() == ["Name,Fare", "'=1+1,-3.5", "ok,2.0"]
