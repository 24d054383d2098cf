"""The server's registry of models: looking at a model never loads it, the models it keeps
loaded are bounded (an LRU of ``max_loaded_models``), and models from the server config train
at start-up as jobs while the server answers.

No clock: a start-up training is held at its fit (``mlwidget.jobs.job.Pause``) while the
requests are made, so each answer provably arrives while it is still training."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import joblib
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER
from rest_helpers import call, wait_until_async

import mlwidget.snapshot
from mlwidget import MLModel
from mlwidget.jobs.job import Pause

PASSENGER = {k: str(v) for k, v in GUIDE_PASSENGER.items()}
HTML = {"Accept": "text/html"}


def registry_of(serverapp):
    (app,) = serverapp.extension_manager.extension_apps["mlwidget_server"]
    return app.registry


async def listing(jp_fetch) -> dict[str, dict]:
    reply = await call(jp_fetch, "mlhandler", "")
    assert reply.code == 200, reply.text
    return {m["name"]: m for m in reply.json()["models"]}


# ---------------------------------------------------------------------------------------------
# info() never loads


def test_info_of_a_stored_model_does_not_load_or_compile_it(store_dir, titanic_csv, monkeypatch):
    """info() ran joblib.load and compiled the fast path: the listing did it for every model."""
    MLModel("titanic", data=str(titanic_csv), store=store_dir, executor="thread", **GUIDE_OPTIONS)
    loads, compiles = [], []
    load, compile_model = joblib.load, mlwidget.snapshot.compile_model
    monkeypatch.setattr(joblib, "load", lambda *a, **k: loads.append(a) or load(*a, **k))
    monkeypatch.setattr(
        mlwidget.snapshot,
        "compile_model",
        lambda *a, **k: compiles.append(a) or compile_model(*a, **k),
    )
    fresh = MLModel.open("titanic", store=store_dir)
    info = fresh.info()
    assert (loads, compiles) == ([], [])
    assert not fresh.loaded
    assert info["loaded"] is False and info["predict_path"] == "not loaded"
    # what the stored state says is all there
    assert info["model"] == "LogisticRegression" and info["kind"] == "classifier"
    assert info["fitted"]["model"] == "LogisticRegression" and info["version"] == 1
    assert "Sex" in info["features"] and info["schema"] and info["rows"] == 891
    assert fresh.params_info()["params"]["class"] == "LogisticRegression"  # loads: it shows attrs
    assert len(loads) == 1 and compiles == []

    assert fresh.predict(GUIDE_PASSENGER) == [0]  # the first prediction loads and compiles
    info = fresh.info()
    assert info["loaded"] is True and info["predict_path"] == "fast (linear)"
    assert (len(loads), len(compiles)) == (1, 1)
    unfitted = MLModel("unfitted", store=store_dir).info()
    assert unfitted["loaded"] is False and unfitted["predict_path"] is None


# ---------------------------------------------------------------------------------------------
# an LRU of loaded models

NAMES = ("m1", "m2", "m3", "m4")


class TestMaxLoadedModels:
    @pytest.fixture
    def jp_server_config(self, store_dir: Path, titanic_csv: Path) -> dict:
        for name in NAMES:  # stored before the server starts: nothing is configured
            MLModel(name, data=str(titanic_csv), store=store_dir, executor="thread",
                    **GUIDE_OPTIONS)  # fmt: skip
        return {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {"store_dir": str(store_dir), "max_loaded_models": 2},
        }

    async def test_predicting_on_four_models_keeps_two_loaded(self, jp_fetch, jp_serverapp, caplog):
        registry = registry_of(jp_serverapp)
        assert registry.max_loaded_models == 2
        listed = await listing(jp_fetch)
        assert all(listed[n]["state"] == "ready" and not listed[n]["loaded"] for n in NAMES)
        assert registry.loaded_count() == 0  # listing loads nothing
        counts = []
        log, level = registry.log, registry.log.level  # the server's log (it does not propagate)
        log.addHandler(caplog.handler)
        log.setLevel(logging.DEBUG)
        try:
            for _ in range(2):
                for name in NAMES:
                    reply = await call(jp_fetch, "mlhandler", name, params=PASSENGER)
                    assert reply.json() == [0], reply.text
                    counts.append(registry.loaded_count())
                    assert (await listing(jp_fetch))[name]["loaded"] is True
            assert (await call(jp_fetch, "mlhandler", "m3", params=PASSENGER)).json() == [0]
        finally:
            log.removeHandler(caplog.handler)
            log.setLevel(level)
        assert max(counts) == 2 and counts[:2] == [1, 2]
        assert list(registry._cache) == ["m4", "m3"]  # the most recently used last
        listed = await listing(jp_fetch)
        assert [n for n in NAMES if listed[n]["loaded"]] == ["m3", "m4"]
        assert all(listed[n]["state"] == "ready" for n in NAMES)  # evicted, still listed
        messages = [r.getMessage() for r in caplog.records]
        assert any("eviction: 'm1'" in m for m in messages)
        assert any("hit: 'm3'" in m for m in messages) and any("miss: 'm1'" in m for m in messages)


# ---------------------------------------------------------------------------------------------
# configured models train as jobs, and the server answers meanwhile

CONFIGURED = ("first", "second", "third")


@pytest.fixture
def pause():
    """Opened before the server starts (the classes' ``jp_server_config`` asks for it): the
    first start-up job is held at its fit."""
    with Pause("fit") as pause:
        yield pause


class TestConfiguredModelsTrainAsJobs:
    @pytest.fixture
    def jp_server_config(self, pause: Pause, store_dir: Path, titanic_csv: Path) -> dict:
        models = {name: {"data": str(titanic_csv), **GUIDE_OPTIONS} for name in CONFIGURED}
        return {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            # one worker process: the held job holds it, the other models' jobs queue
            "MLWidgetApp": {"store_dir": str(store_dir), "max_workers": 1, "models": models},
        }

    async def test_the_server_answers_while_they_train(self, jp_fetch, jp_serverapp, pause):
        registry = registry_of(jp_serverapp)
        await wait_until_async(pause.reached.is_set, what="a start-up job reaching its fit")
        held = pause.job
        assert held.action == "retrain" and registry.runner.executor == "process"
        name = held.model
        # a prediction waits for the training (on the event loop) by default
        waiting = asyncio.ensure_future(call(jp_fetch, "mlhandler", name, params=PASSENGER))

        models = await listing(jp_fetch)
        assert sorted(models) == sorted(CONFIGURED)
        assert {m["state"] for m in models.values()} == {"training"}, models
        assert models[name]["job"] == held.id and models[name]["stage"] == "fit"
        page = await call(jp_fetch, "mlhandler", "", headers=HTML)
        assert page.code == 200 and f'data-name="{name}" data-state="training"' in page.text

        # ?_job follows it at once; V2's ready answers at once
        job = await call(jp_fetch, "mlhandler", name, params={"_job": held.id})
        assert job.code == 200 and job.json()["status"] == "running", job.text
        ready = await call(jp_fetch, "mlhandler", "v2", "models", name, "ready")
        assert ready.code == 503 and ready.json()["job"] == held.id
        assert not waiting.done()  # the job is held: nothing could have answered it

        pause.release()
        assert (await waiting).json() == [0]
        await wait_until_async(
            lambda: all(registry.training_job(n) is None for n in CONFIGURED),
            what="every start-up job ending",
        )
        models = await listing(jp_fetch)
        assert {m["state"] for m in models.values()} == {"ready"}, models
        for n in CONFIGURED:
            assert (await call(jp_fetch, "mlhandler", n, params=PASSENGER)).json() == [0]
            info = (await call(jp_fetch, "mlhandler", n, params={"_model": ""})).json()
            assert info["fitted"]["model"] == "LogisticRegression" and info["version"] == 1
        ready = await call(jp_fetch, "mlhandler", "v2", "models", name, "ready")
        assert ready.json() == {"name": name, "ready": True}


class TestAConfiguredModelsTrainingCancelled:
    @pytest.fixture
    def jp_server_config(self, pause: Pause, store_dir: Path, titanic_csv: Path) -> dict:
        return {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {
                "store_dir": str(store_dir),
                "training_wait": 0,  # a request answers 503 at once, _wait or not
                "models": {"titanic": {"data": str(titanic_csv), **GUIDE_OPTIONS}},
            },
        }

    async def test_cancel_stops_it_and_the_next_start_tries_again(
        self, jp_fetch, jp_serverapp, pause, store_dir
    ):
        registry = registry_of(jp_serverapp)
        await wait_until_async(pause.reached.is_set, what="the start-up job reaching its fit")
        job = pause.job
        reply = await call(jp_fetch, "mlhandler", "titanic", params=PASSENGER)
        assert reply.code == 503 and reply.json()["job"] == job.id, reply.text
        assert f"is training: job {job.id}" in reply.json()["error"]
        assert f"GET ?_job={job.id} follows it" in reply.json()["error"]
        jobs = await call(jp_fetch, "mlhandler", "titanic", params={"_jobs": ""})
        assert [j["job"] for j in jobs.json()] == [job.id]
        reply = await call(
            jp_fetch, "mlhandler", "titanic", method="DELETE", params={"_job": job.id}
        )
        assert reply.code == 200, reply.text
        pause.release()
        await wait_until_async(lambda: job.done, what="the cancelled job ending")
        assert job.status == "cancelled"
        await wait_until_async(lambda: registry.failure("titanic"), what="the failure recorded")
        entry = (await listing(jp_fetch))["titanic"]
        assert entry["state"] == "error" and "cancelled" in entry["error"], entry
        assert not (store_dir / "titanic").exists()  # nothing half-made: the next start retries
        reply = await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})
        assert reply.code == 404 and "server config" in reply.json()["error"], reply.text
