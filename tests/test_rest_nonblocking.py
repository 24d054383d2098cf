"""Training runs off the event loop: other requests and models keep answering meanwhile.

No clock: the retrain is held at a known point (``mlwidget.jobs.job.Pause``) while the other
requests are made, so each answer provably arrives while the retrain is still running."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER
from rest_helpers import call, wait_until_async

from mlwidget import MLModel
from mlwidget.jobs.job import Pause

PASSENGER = {k: str(v) for k, v in GUIDE_PASSENGER.items()}
PROBE = {"x1": "2", "x2": "0", "x3": "0", "c": "a"}
ROWS = 20_000  # the large table: any size will do, the retrain is held, not timed


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
    """While a retrain is held mid-fit (its job stopped at its first report from the fit, by
    the test), the other model, the server's status and the retraining model itself (from its
    previous fit) all answer; then the retrain is let go, answers, and its model takes over.
    The order proves it, not a clock: each answer arrives while the retrain is provably still
    held. Were the work, or the wait for it, on the event loop, no answer could come before
    the hold ran out (``Pause.within``), and the test fails."""
    # two models in the store, made "in a kernel" (this process)
    MLModel("titanic", data=str(titanic_csv), store=store_dir, **GUIDE_OPTIONS)
    small, big = tables(ROWS)
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
    serving_before = model.info()["version"]

    with Pause("fit") as pause:  # the retrain's job waits at its first report from the fit
        retrain = asyncio.ensure_future(
            call(jp_fetch, "mlhandler", "big", method="POST", params={"_action": "retrain"})
        )
        await wait_until_async(pause.reached.is_set, what="the retrain reaching its fit")
        job = pause.job
        assert job is not None and job.model == "big" and job.action == "retrain"
        for label, parts, params in [
            ("other model predicts", ("mlhandler", "titanic"), PASSENGER),
            ("server status", ("api", "status"), None),
            ("retraining model predicts", ("mlhandler", "big"), PROBE),
        ]:
            reply = await call(jp_fetch, *parts, params=params)
            assert pause.holding, f"{label} answered only once the retrain went on"
            assert reply.code == 200, (label, reply.text)
            if label == "other model predicts":
                assert reply.json() == [0]
            if label == "retraining model predicts":
                assert reply.json() == [1]  # answered by the previous fitted model
        assert not retrain.done() and job.status == "running" and job.stage == "fit"
        pause.release()  # the retrain goes on, and its request answers

        reply = await retrain
    assert reply.code == 200, reply.text
    assert reply.json()["rows"] == len(small) + len(big)
    assert job.status == "done"
    # the new model takes over
    r = await call(jp_fetch, "mlhandler", "big", params=PROBE)
    assert r.json() == [0]
    # a new version serves (trained_at has whole seconds: two fits can share one)
    assert MLModel.open("big", store=store_dir).info()["version"] > serving_before
