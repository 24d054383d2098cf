"""What a second attack run found after the safety fixes (issue 10), each reproduced here."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import filelock
import pandas as pd
import pytest
from conftest import GUIDE_PASSENGER
from rest_helpers import assert_clean_error, call, titanic_server_config

from mlwidget import MLModel, PayloadTooLarge
from mlwidget.tables import read_table

NAME = "titanic"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv)


def put(jp_fetch, name: str, body: dict):
    return call(
        jp_fetch, "mlhandler", name, method="PUT", params={"_model": ""},
        body=json.dumps(body), headers=JSON,
    )  # fmt: skip


async def test_a_refused_put_never_removes_a_model_created_meanwhile(jp_fetch, store_dir):
    """A good and a bad PUT to a new name at once: the bad one removed the good one's model
    (4 times in 6), answered 500 once, and left the name answering 404 until a restart."""
    for i in range(6):
        name = f"race{i}"
        good, bad = await asyncio.gather(
            put(jp_fetch, name, {"class": "LogisticRegression", "C": 0.5}),
            put(jp_fetch, name, {"class": "LogisticRegression", "C": "notanumber"}),
        )
        assert good.code == 200, good.text
        assert_clean_error(bad, 400, "C")
        info = MLModel.open(name, store=store_dir).info()
        assert info["params"]["C"] == 0.5
        assert (await call(jp_fetch, "mlhandler", name, params={"_model": ""})).code == 200


async def test_writers_waiting_for_a_busy_model_hold_no_worker(jp_fetch, store_dir):
    """Three PUTs waiting for a model's lock (held by a long fit) took every worker: the
    listing and ?_model of every model stopped answering."""
    assert (await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})).code == 200
    await put(jp_fetch, "other", {"class": "LogisticRegression"})
    lock = filelock.FileLock(str(store_dir / NAME / ".lock"))
    lock.acquire()  # as a retrain in another process holds it
    try:
        writers = [
            asyncio.ensure_future(put(jp_fetch, NAME, {"C": 0.1 * (i + 1)})) for i in range(6)
        ]
        await asyncio.sleep(0.5)
        for params in ({}, {"_model": ""}):
            for name in ("", "other"):
                reply = await call(jp_fetch, "mlhandler", name, params=params, request_timeout=5)
                assert reply.code == 200, reply.text
        reply = await call(jp_fetch, "mlhandler", NAME, params=GUIDE_PASSENGER, request_timeout=5)
        assert reply.json() == [0]
        assert not any(w.done() for w in writers)  # they wait...
    finally:
        lock.release()
    replies = await asyncio.gather(*writers)  # ...and land once the model is free
    assert [r.code for r in replies] == [200] * 6


async def test_errors_quote_a_huge_value_in_part(jp_fetch):
    """A 50 MB parameter value came back whole in the error (and in the log)."""
    reply = await put(jp_fetch, NAME, {"class": "LogisticRegression", "C": "x" * 200_000})
    assert_clean_error(reply, 400, "C", "characters in all")
    assert len(reply.body) < 5_000


@pytest.mark.parametrize("cls", ["LabelEncoder", "KernelCenterer"])
async def test_classes_without_declared_parameters_are_not_a_500(jp_fetch, store_dir, cls):
    reply = await put(jp_fetch, "odd", {"class": cls})
    assert reply.code < 500, reply.text


@pytest.mark.parametrize(
    "body",
    [
        {"class": "KernelDensity"},
        {"class": "FeatureHasher"},
        {"class": "OneVsRestClassifier", "estimator": "KMeans"},
    ],
    ids=["KernelDensity", "FeatureHasher", "OneVsRest-KMeans"],
)
async def test_estimators_that_cannot_predict_answer_4xx(jp_fetch, body):
    """They trained, then every prediction answered 500."""
    await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})
    assert (await put(jp_fetch, NAME, body)).code == 200
    retrain = await call(jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "retrain"})
    if retrain.code != 200:
        assert_clean_error(retrain, 400)
        return
    rows = json.dumps([GUIDE_PASSENGER] * 3)
    for params in ({}, {"_format": "records"}):
        reply = await call(
            jp_fetch, "mlhandler", NAME, method="POST", params=params, body=rows, headers=JSON
        )
        assert reply.code == 200 or 400 <= reply.code < 500, reply.text
        if reply.code != 200:
            assert_clean_error(reply, reply.code)


def test_a_small_parquet_whose_text_decodes_to_gigabytes_is_413():
    """346 KB of dictionary-encoded text took the server to 4 GB (and kept it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = pa.array(["a" * 2000, "b" * 2000, "c" * 2000, "d" * 2000] * 375_000)
    table = pa.table({"Sex": pa.compute.dictionary_encode(values).cast(pa.string())})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", use_dictionary=True)
    content = buf.getvalue()
    assert len(content) < 2_000_000
    with pytest.raises(PayloadTooLarge, match="unpacks"):
        read_table(content)
    # an ordinary table of the same shape still reads
    small = pd.DataFrame({"Sex": ["male", "female"] * 1000})
    buf = io.BytesIO()
    small.to_parquet(buf)
    pd.testing.assert_frame_equal(read_table(buf.getvalue()), small)
