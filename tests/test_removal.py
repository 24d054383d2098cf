"""Deleting a model (mlwidget/removal.py): from Python (``model.delete()``), REST
(``DELETE ?delete=all``) and the listing: options, data, versions and log go, the store and the
listing forget it and its URL answers 404; owners only; a running job is a 409 naming it, and
then nothing is removed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import GUIDE_OPTIONS
from rest_helpers import call, titanic_server_config

from mlwidget import Conflict, MLModel, NotFound, jobs
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
