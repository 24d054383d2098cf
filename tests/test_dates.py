"""Columns understood (mlwidget/dates.py, mlwidget/suggest.py): identifiers and unique-per-row
columns are never suggested as targets; date columns become numbers (year, month, day,
weekday, ordinal) in the pipeline, so a raw date string predicts the same way from Python, a
GET query and POSTed rows; the ``dates`` option shows and changes that choice."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from rest_helpers import call

from mlwidget import BadRequest, MLModel, suggest
from mlwidget.dates import PARTS

DATA = Path(__file__).parent / "data"
INFLATION = DATA / "inflation.csv"


def test_inflation_is_not_predicting_its_dates():
    found = suggest.inspect(pd.read_csv(INFLATION))
    assert found["target"] != "index" and found["target"] in ("Dp", "R")
    assert found["kind"] == "regressor"
    assert found["dates"] == ["index"] and "index" in found["ids"]
    assert [c["dtype"] for c in found["columns"]] == ["number", "number", "date"]


def test_unique_per_row_columns_are_never_suggested():
    rows = 30
    frame = pd.DataFrame(
        {
            "grade": ["a", "b", "c"] * 10,
            "amount": [i * 1.37 + 0.5 for i in range(rows)],  # fractional: may be a target
            "name": [f"person {i}" for i in range(rows)],  # one per row: an identifier
            "code": list(range(100, 100 + rows)),  # consecutive whole numbers: an identifier
            "when": pd.date_range("2020-01-01", periods=rows).astype(str),  # a date per row
            "customer_id": [i % 7 for i in range(rows)],  # named like an identifier
        }
    )
    found = suggest.inspect(frame)
    assert found["target"] == "amount"
    assert set(found["ids"]) == {"name", "code", "when", "customer_id"}
    assert suggest.suggest_target(frame[["grade", "name"]]) == "grade"
    # only identifiers: the last column still (there is nothing better), never an error
    assert suggest.suggest_target(frame[["name", "code"]]) == "code"
    # a column named like a target that holds one value per row is not taken either
    labelled = frame.assign(label=[f"row {i}" for i in range(rows)])
    assert suggest.suggest_target(labelled) == "amount"


def test_a_date_column_is_numbers_in_the_fitted_pipeline(store_dir):
    m = MLModel("inflation", data=str(INFLATION), store=store_dir, target_col="Dp")
    info = m.info()
    assert info["dates"] == ["index"]
    kinds = {f["name"]: f["kind"] for f in info["schema"]}
    assert kinds == {"R": "number", "index": "date"}
    names = list(m.pipeline.named_steps["transform"].get_feature_names_out())
    assert [n for n in names if "index" in n] == [f"date__index_{p}" for p in PARTS]
    assert not any("1972" in n for n in names)  # no one-hot column per date
    raw = m.predict([{"R": 0.083, "index": "1990-07-01"}])
    parsed = m.predict(pd.DataFrame({"R": [0.083], "index": pd.to_datetime(["1990-07-01"])}))
    assert raw == parsed
    with pytest.raises(BadRequest, match="Expected a date for column 'index'.*'soon'"):
        m.predict([{"R": 0.083, "index": "soon"}])


def test_the_dates_option_turns_it_off_or_names_columns(store_dir):
    off = MLModel("off", data=str(INFLATION), store=store_dir, target_col="Dp", dates=[])
    assert off.info()["dates"] == [] and off.info()["options"]["dates"] == []
    assert {f["name"]: f["kind"] for f in off.info()["schema"]}["index"] == "category"
    with pytest.raises(BadRequest, match="Expected a date for column 'R'"):
        MLModel("bad", data=str(INFLATION), store=store_dir, target_col="Dp", dates=["R"])
    with pytest.raises(BadRequest, match="dates lists 'nope', which is not a feature"):
        off.configure(dates=["nope"])
        off.retrain()
    assert off.info()["dates"] == []  # the failed retrain changed nothing fitted


def test_a_model_made_from_data_alone_says_what_it_would_pick(store_dir):
    m = MLModel("guess", data=str(INFLATION), store=store_dir)
    notes = " ".join(m.info()["notes"])
    assert "target_col='R'" in notes and "index read as dates" in notes
    assert m.info()["fitted"] is None


# ------------------------------------------------------------------ REST


@pytest.fixture
def jp_server_config(store_dir: Path) -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
        "MLWidgetApp": {"store_dir": str(store_dir), "executor": "thread"},
    }


async def test_preview_shows_and_takes_the_dates(jp_fetch):
    body = INFLATION.read_bytes()
    headers = {"Content-Type": "text/csv"}
    reply = await call(
        jp_fetch, "mlhandler/", method="POST", params={"_action": "preview"}, body=body,
        headers=headers,
    )  # fmt: skip
    found = reply.json()
    assert reply.code == 200 and found["target"] != "index" and found["dates"] == ["index"]
    off = await call(
        jp_fetch, "mlhandler/", method="POST", params={"_action": "preview", "dates": ""},
        body=body, headers=headers,
    )  # fmt: skip
    assert off.code == 200 and off.json()["dates"] == []
    bad = await call(
        jp_fetch, "mlhandler/", method="POST", params={"_action": "preview", "dates": "Dp"},
        body=body, headers=headers,
    )  # fmt: skip
    assert bad.code == 400 and "Expected a date for column 'Dp'" in bad.json()["error"]


async def test_a_raw_date_predicts_the_same_over_get_and_post(jp_fetch, store_dir):
    put = await call(
        jp_fetch, "mlhandler", "infl", method="PUT",
        params={"_model": "", "class": "RandomForestRegressor", "target_col": "Dp",
                "n_estimators": "10", "random_state": "0"},
    )  # fmt: skip
    assert put.code == 200, put.text
    trained = await call(
        jp_fetch, "mlhandler", "infl", method="POST", params={"_action": "retrain"},
        body=INFLATION.read_bytes(), headers={"Content-Type": "text/csv"},
    )  # fmt: skip
    assert trained.code == 200, trained.text
    info = (await call(jp_fetch, "mlhandler", "infl", params={"_model": ""})).json()
    assert info["dates"] == ["index"] and info["options"]["dates"] is None
    row = {"R": "0.083", "index": "1990-07-01"}
    got = await call(jp_fetch, "mlhandler", "infl", params=row)
    posted = await call(
        jp_fetch, "mlhandler", "infl", method="POST", body=json.dumps([row]),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert got.code == 200 and posted.code == 200, (got.text, posted.text)
    expected = MLModel.open("infl", store=store_dir).predict([row])
    assert got.json() == posted.json() == expected
    bad = await call(jp_fetch, "mlhandler", "infl", params={"R": "0.083", "index": "soon"})
    assert bad.code == 400 and "Expected a date for column 'index'" in bad.json()["error"]
    # the option over PUT: validated, then used by the next retrain
    wrong = await call(
        jp_fetch, "mlhandler", "infl", method="PUT", params={"_model": "", "dates": "Dp"}
    )
    assert wrong.code == 200  # stored; the retrain says why it cannot be used
    refused = await call(
        jp_fetch, "mlhandler", "infl", method="POST", params={"_action": "retrain"}
    )
    assert refused.code == 400 and "the target column" in refused.json()["error"]
    assert (await call(jp_fetch, "mlhandler", "infl", params=row)).json() == expected
