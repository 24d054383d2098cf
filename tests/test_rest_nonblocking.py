"""Training runs off the event loop: other requests and models keep answering meanwhile."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER
from rest_helpers import call

from mlwidget import MLModel

PASSENGER = {k: str(v) for k, v in GUIDE_PASSENGER.items()}
PROBE = {"x1": "2", "x2": "0", "x3": "0", "c": "a"}


@pytest.fixture
def jp_server_config(store_dir: Path) -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
        "MLWidgetApp": {"store_dir": str(store_dir)},
    }


def tables(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A small table where y = x1 > 0 and a large one where y = x1 < 0: the two models
    trained on them answer the probe (x1 = 2) differently."""
    rng = np.random.default_rng(0)
    big = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "x3": rng.normal(size=n),
            "c": rng.choice(list("abcd"), size=n),
        }
    )
    big["y"] = (big["x1"] < 0).astype(int)
    small = big.head(300).copy()
    small["y"] = (small["x1"] > 0).astype(int)
    return small, big


async def test_retrain_does_not_block_other_requests(jp_fetch, store_dir, titanic_csv):
    # two models in the store, made "in a kernel" (this process)
    MLModel("titanic", data=str(titanic_csv), store=store_dir, **GUIDE_OPTIONS)
    small, big = tables(200_000)
    model = MLModel(
        "big",
        data=small,
        store=store_dir,
        class_="RandomForestClassifier",
        n_estimators=10,
        target_col="y",
    )
    model.append(big)
    r = await call(jp_fetch, "mlhandler", "big", params=PROBE)
    assert r.json() == [1]  # the small table's rule
    trained_before = model.info()["fitted"]["trained_at"]

    started = time.monotonic()
    retrain = asyncio.ensure_future(
        call(jp_fetch, "mlhandler", "big", method="POST", params={"_action": "retrain"})
    )
    await asyncio.sleep(0.5)  # the request reaches the server and training starts
    assert not retrain.done()

    timings = {}
    for label, parts, params in [
        ("other model predicts", ("mlhandler", "titanic"), PASSENGER),
        ("server status", ("api", "status"), None),
        ("retraining model predicts", ("mlhandler", "big"), PROBE),
    ]:
        t0 = time.monotonic()
        reply = await call(jp_fetch, *parts, params=params)
        timings[label] = time.monotonic() - t0
        assert reply.code == 200, (label, reply.text)
        if label == "other model predicts":
            assert reply.json() == [0]
        if label == "retraining model predicts":
            assert reply.json() == [1]  # answered by the previous fitted model
    assert not retrain.done(), f"the retrain finished before the checks ended: {timings}"
    assert max(timings.values()) < 5, timings

    reply = await retrain
    assert reply.code == 200, reply.text
    assert reply.json()["rows"] > 100_000
    assert time.monotonic() - started > max(timings.values())
    # the new model takes over
    r = await call(jp_fetch, "mlhandler", "big", params=PROBE)
    assert r.json() == [0]
    assert MLModel.open("big", store=store_dir).info()["fitted"]["trained_at"] != trained_before
