"""Deleting a model (mlwidget/removal.py): from Python (``model.delete()``), REST
(``DELETE ?delete=all``) and the listing: options, data, versions and log go, the store and the
listing forget it and its URL answers 404; owners only; a running job is a 409 naming it, and
then nothing is removed."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import GUIDE_OPTIONS
from rest_helpers import call, settled, titanic_server_config

from mlwidget import Conflict, MLModel, NotFound, jobs
from mlwidget.jobs.pause import Pause
from mlwidget.keys import KeyRing
from mlwidget.store import Store

IRIS = Path(__file__).parent / "data" / "iris.csv"


@dataclasses.dataclass
class Running:
    """A job of a model that has not finished, as the process's job board sees one."""

    key: tuple[str, str]
    id: str = "job-under-test"
    action: str = "retrain"
    model: str = ""
    writer: bool = True
    status: str = "running"
    finished: float | None = None
    stored: None = None
    removed: str | None = None
    done: bool = False
    stage: str = "fit"
    overall: float = 0.5

    def forget(self, why: str) -> int:
        return 0


@pytest.fixture
def running() -> Iterator[Callable[[MLModel], Running]]:
    started: list[Running] = []

    def start(model: MLModel) -> Running:
        job = Running(model.job_key, model=model.name)
        jobs.board.add(job)
        started.append(job)
        return job

    yield start
    for job in started:
        job.done, job.status = True, "done"
        jobs.board.finished(job)


def test_delete_from_python_removes_everything(store_dir, running):
    m = MLModel("iris", data=str(IRIS), store=store_dir, target_col="species")
    m.retrain()  # a second version
    folder = Store(store_dir).dir("iris")
    assert folder.is_dir() and len(m.versions()) == 2
    job = running(m)
    with pytest.raises(Conflict, match=job.id):
        m.delete()
    assert folder.is_dir() and MLModel.open("iris", store=store_dir).info()["fitted"]
    job.done, job.status = True, "done"
    jobs.board.finished(job)
    assert m.delete() == {"name": "iris", "deleted": ["all"], "absent": []}
    assert not folder.exists() and "iris" not in Store(store_dir).names()
    with pytest.raises(NotFound):
        MLModel.open("iris", store=store_dir)
    assert m.delete() == {"name": "iris", "deleted": [], "absent": ["all"]}  # idempotent


@pytest.mark.cross_validates
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_delete_cancels_the_cross_validation_after_a_fit(store_dir, executor):
    # the crossval job a fit starts was a 409 for as long as its folds ran (seconds, or
    # minutes for a forest): nothing to wait for, since its score is of a model about to go
    m = MLModel("iris", data=str(IRIS), store=store_dir, target_col="species", executor=executor)
    folder = Store(store_dir).dir("iris")
    with Pause("cv") as pause:
        answer = m.retrain(wait=False).result(120)
        assert answer["cv_score"]["pending"], answer
        assert pause.reached.wait(120), "the crossval job never reported its folds"
        follow = pause.job
        assert (follow.id, follow.action) == (answer["cv_score"]["job"], "crossval")
        outcome: list[object] = []

        def delete() -> None:
            try:
                outcome.append(m.delete())
            except Conflict as exc:
                outcome.append(exc)

        deleting = threading.Thread(target=delete)
        deleting.start()
        assert follow.stop.wait(60), f"the delete did not cancel the crossval job: {outcome}"
        pause.release()
        deleting.join(120)
    assert outcome == [{"name": "iris", "deleted": ["all"], "absent": []}]
    assert follow.status == "cancelled"
    assert not folder.exists() and "iris" not in Store(store_dir).names()


def test_a_delete_cancels_no_cross_validation_when_another_job_is_the_409(store_dir, running):
    m = MLModel("iris", data=str(IRIS), store=store_dir, target_col="species", cv_folds=3)
    with Pause("cv") as pause:
        m.retrain(wait=False).result(120)
        assert pause.reached.wait(120)
        other = running(m)  # a job that is not a cross-validation: the delete waits for it
        with pytest.raises(Conflict, match=other.id):
            m.delete()
        assert not pause.job.stop.is_set() and not pause.job.done  # its score still comes
    assert pause.job.result(120)["on"] == "3-fold cv"
    assert Store(store_dir).dir("iris").is_dir()


# ------------------------------------------------------------------ REST


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv, executor="thread")


async def listed(jp_fetch) -> list[str]:
    return [m["name"] for m in (await call(jp_fetch, "mlhandler/")).json()["models"]]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_delete_over_rest_needs_an_owner_and_removes_everything(jp_fetch, store_dir):
    MLModel("iris", data=str(IRIS), store=store_dir, target_col="species")
    folder = Store(store_dir).dir("iris")
    ring = KeyRing(store_dir)
    for role in ("viewer", "trainer"):
        key = ring.create(role, "*", label=role)[1]
        reply = await call(
            jp_fetch, "mlhandler", "iris", method="DELETE", params={"delete": "all"},
            headers={"Authorization": f"Bearer {key}"},
        )  # fmt: skip
        assert reply.code == 403 and "needs the owner role" in reply.json()["error"]
        assert folder.is_dir()
    own, own_text = ring.create("viewer", "iris", label="iris app")  # this model's key
    bad = await call(jp_fetch, "mlhandler", "iris", method="DELETE", params={"delete": "some"})
    assert bad.code == 400 and "?delete=all" in bad.json()["error"] and folder.is_dir()
    reply = await call(jp_fetch, "mlhandler", "iris", method="DELETE", params={"delete": "all"})
    assert reply.code == 200
    assert reply.json() == {
        "name": "iris",
        "deleted": ["all"],
        "absent": [],
        "revoked_keys": [own.id],
    }
    assert not folder.exists()
    # the model's own key does not open a new model of the same name; the * keys stay
    MLModel("iris", data=str(IRIS), store=store_dir, target_col="species")
    params = {"_model": ""}
    reply = await call(jp_fetch, "mlhandler", "iris", params=params, headers=bearer(own_text))
    assert reply.code == 403 and "revoked" in reply.json()["error"]
    assert {k.label: k.status() for k in ring.list()}["viewer"] == "active"
    await call(jp_fetch, "mlhandler", "iris", method="DELETE", params={"delete": "all"})
    assert "iris" not in await listed(jp_fetch)
    assert (await call(jp_fetch, "mlhandler", "iris", params={"_model": ""})).code == 404
    again = await call(jp_fetch, "mlhandler", "iris", method="DELETE", params={"delete": "all"})
    assert again.code == 404


async def test_a_running_job_is_a_409_naming_it_and_nothing_is_removed(
    jp_fetch, store_dir, running
):
    m = MLModel("iris", data=str(IRIS), store=store_dir, target_col="species")
    job = running(m)
    reply = await call(jp_fetch, "mlhandler", "iris", method="DELETE", params={"delete": "all"})
    assert reply.code == 409 and reply.json()["job"] == job.id
    assert Store(store_dir).dir("iris").is_dir() and "iris" in await listed(jp_fetch)


@pytest.mark.cross_validates
async def test_a_delete_over_rest_cancels_the_cross_validation_after_a_fit(jp_fetch, store_dir):
    MLModel("iris", data=str(IRIS), store=store_dir, target_col="species")
    await settled(jp_fetch)  # the configured titanic's start-up crossval is over: not held
    with Pause("cv") as pause:
        fit = await call(jp_fetch, "mlhandler", "iris", method="POST",
                         params={"_action": "retrain"})  # fmt: skip
        assert fit.code == 200 and fit.json()["cv_score"]["pending"], fit.text
        assert await asyncio.to_thread(pause.reached.wait, 120)
        assert pause.job.id == fit.json()["cv_score"]["job"]
        deleting = asyncio.ensure_future(
            call(jp_fetch, "mlhandler", "iris", method="DELETE", params={"delete": "all"})
        )
        assert await asyncio.to_thread(pause.job.stop.wait, 60), "the crossval job runs on"
        pause.release()
        reply = await deleting
    assert reply.code == 200 and reply.json()["deleted"] == ["all"], reply.text
    assert pause.job.status == "cancelled" and not Store(store_dir).dir("iris").exists()
    assert "iris" not in await listed(jp_fetch)


async def test_a_configured_model_deleted_is_gone_until_the_server_restarts(jp_fetch, store_dir):
    assert (await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})).code == 200
    reply = await call(jp_fetch, "mlhandler", "titanic", method="DELETE", params={"delete": "all"})
    assert reply.code == 200 and not Store(store_dir).dir("titanic").exists()
    assert "titanic" not in await listed(jp_fetch)
    assert (await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})).code == 404
    # made again over PUT: listed again
    put = await call(
        jp_fetch, "mlhandler", "titanic", method="PUT",
        params={"_model": "", "class": "LogisticRegression", "target_col": "Survived"},
    )  # fmt: skip
    assert put.code == 200 and "titanic" in await listed(jp_fetch)
    assert GUIDE_OPTIONS["target_col"] == "Survived"
