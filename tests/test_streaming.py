"""Bulk predictions of a large CSV body, read and predicted chunk by chunk (issue 12).

The thresholds are lowered here so that a few thousand rows take the chunked path that a
74 MB body takes in production (benchmarks/bulk.py measures the memory it saves)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlwidget_server import streaming
from rest_helpers import TITANIC, assert_clean_error, call, stored, titanic_server_config

from mlwidget import MLModel, chunked

CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv)


@pytest.fixture
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "SPOOL_BYTES", 20_000)
    monkeypatch.setattr(streaming, "STREAM_BYTES", 50_000)
    monkeypatch.setattr(chunked, "CHUNK_ROWS", 700)


def passengers(n: int) -> pd.DataFrame:
    """``n`` Titanic rows (every column, as a user's file has), Age and Fare varied."""
    base = pd.read_csv(TITANIC)
    rng = np.random.default_rng(0)
    out = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
    out["Age"] = (out["Age"] + rng.normal(0, 3, n)).round(1)
    out["Fare"] = (out["Fare"] * rng.lognormal(0, 0.2, n)).round(2)
    return out


async def test_large_csv_is_answered_chunk_by_chunk(jp_fetch, store_dir, small_thresholds):
    frame = passengers(5000)
    body = frame.to_csv(index=False).encode()
    assert len(body) > streaming.STREAM_BYTES
    reply = await call(jp_fetch, "mlhandler", "titanic", method="POST", body=body, headers=CSV,
                       params={"_action": "predict"})  # fmt: skip
    assert reply.code == 200, reply.text
    expected = MLModel.open("titanic", store=store_dir).predict(frame)
    assert reply.json() == expected  # every row, in order, as the whole-table path answers
    # written in pieces as it was predicted, not as one buffered answer
    assert "Content-Length" not in reply.headers
    assert reply.headers.get("Content-Type", "").startswith("application/json")

    # the same body under the threshold takes the whole-table path: the same answer
    streaming.STREAM_BYTES = len(body) + 1
    whole = await call(jp_fetch, "mlhandler", "titanic", method="POST", body=body, headers=CSV)
    assert whole.json() == expected and "Content-Length" in whole.headers


async def test_a_bad_value_in_the_last_chunk_is_a_clean_400(jp_fetch, store_dir, small_thresholds):
    frame = passengers(5000)
    frame["Age"] = frame["Age"].astype(object)
    frame.loc[4990, "Age"] = "very old"
    await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})
    before = stored(store_dir)
    reply = await call(jp_fetch, "mlhandler", "titanic", method="POST", headers=CSV,
                       body=frame.to_csv(index=False))  # fmt: skip
    # nothing was written before the error: the whole answer is the error
    assert_clean_error(reply, 400, "Age", "very old", "(row 4991)")
    assert stored(store_dir) == before


async def test_a_missing_feature_column_is_named(jp_fetch, small_thresholds):
    body = passengers(5000).drop(columns=["Fare"]).to_csv(index=False)
    reply = await call(jp_fetch, "mlhandler", "titanic", method="POST", body=body, headers=CSV)
    assert_clean_error(reply, 400, "Fare")


async def test_a_ragged_csv_is_a_400_naming_the_line(jp_fetch, small_thresholds):
    body = passengers(5000).to_csv(index=False) + "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
    reply = await call(jp_fetch, "mlhandler", "titanic", method="POST", body=body, headers=CSV)
    assert_clean_error(reply, 400, "CSV", "line 5002")


async def test_the_table_ceiling_holds_while_streaming(jp_fetch, small_thresholds, ceilings):
    ceilings(max_table_cells=12 * 3000)  # 3000 rows of the file's 12 columns
    body = passengers(5000).to_csv(index=False)
    reply = await call(jp_fetch, "mlhandler", "titanic", method="POST", body=body, headers=CSV)
    assert_clean_error(reply, 413, "max_table_cells")


def test_python_predicts_chunks_of_a_file(tmp_path, store_dir):
    frame = passengers(3000)
    path = tmp_path / "passengers.csv"
    frame.to_csv(path, index=False)
    m = MLModel(
        "chunks",
        data=pd.read_csv(TITANIC),
        store=store_dir,
        target_col="Survived",
        exclude=["PassengerId", "Ticket", "Cabin", "Name"],
        **{"class": "LogisticRegression"},
    )
    whole = m.predict(frame)
    assert m.predict(pd.read_csv(path, chunksize=400)) == whole
    with open(path, "rb") as f:
        parts = m.predict_parts(chunked.csv_chunks(f, rows=1000), json.dumps)
    assert len(parts) == 3 and sum((json.loads(p) for p in parts), []) == whole
    with pytest.raises(Exception, match="DataFrames"):
        m.predict(iter([{"Age": 3}]))
