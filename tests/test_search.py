"""Hyper-parameter search as a job (``MLModel.search``, ``POST ?_action=search``): the best
candidate becomes a new version with its parameters and its cross-validated score, every
candidate is recorded, a budget samples the grid, a bad request is a 400 before any job (nothing
stored), and a cancelled search leaves the model as it was.

No clock: a running search is held at its first report (``Pause("search")``) while its worker
grinds a fit that never ends (an SGDClassifier with ``max_iter=2e9`` and no tolerance)."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import time
from pathlib import Path

import psutil
import pytest
from conftest import GUIDE_OPTIONS
from rest_helpers import assert_clean_error, call, stored

from mlwidget import BadRequest, Conflict, MLModel, NotFound, training
from mlwidget.jobs import Job, JobCancelled
from mlwidget.jobs.job import Pause

ENDLESS = {"class": "SGDClassifier", "max_iter": 2_000_000_000, "tol": None}


def settle(model: MLModel) -> MLModel:
    """Wait for the model's jobs (a first fit's crossval) to end: nothing changes after."""
    for job in model.jobs():
        try:
            job.result(120)
        except Exception:
            pass
    return model


@pytest.fixture
def titanic(store_dir: Path, titanic_csv: Path) -> MLModel:
    """The guide's model, fit once (version 1), its retrain's folds 3 (a search's default)."""
    return settle(
        MLModel("titanic", data=str(titanic_csv), store=store_dir, cv_folds=3, **GUIDE_OPTIONS)
    )


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[tuple]]:
    """Every progress report each job receives: (stage, fraction, overall after it)."""
    seen: dict[str, list[tuple]] = collections.defaultdict(list)
    real = Job.report

    def report(self: Job, stage: str, progress: float | None = None) -> None:
        real(self, stage, progress)
        seen[self.id].append((stage, progress, self.overall))

    monkeypatch.setattr(Job, "report", report)
    return seen


def test_a_grid_search_commits_the_best_as_a_new_version(titanic: MLModel, reports) -> None:
    titanic.configure(C=0.01)
    answer = titanic.search({"C": [0.01, 1.0], "class_weight": [None, "balanced"]})
    assert answer["search"] == "grid" and answer["metric"] == "accuracy"
    assert answer["folds"] == 3  # the model's cv_folds, as its retrain's cross-validation
    # every candidate is recorded, ranked
    candidates = answer["candidates"]
    grid = itertools.product([0.01, 1.0], [None, "balanced"])
    combos = [{"C": c, "class_weight": w} for c, w in grid]
    assert sorted(json.dumps(c["params"], sort_keys=True) for c in candidates) == sorted(
        json.dumps(c, sort_keys=True) for c in combos
    )
    assert sorted(c["rank"] for c in candidates) == [1, 2, 3, 4]
    assert all(0.5 < c["mean_score"] < 1 and c["std_score"] >= 0 for c in candidates)
    top = next(c for c in candidates if c["rank"] == 1)
    assert top["mean_score"] == max(c["mean_score"] for c in candidates)
    best = answer["best"]
    assert best["params"] == top["params"] and best["score"] == top["mean_score"]
    # committed as version 2: its parameters in the options, its score as the cv_score
    assert answer["version"] == titanic.version == 2
    assert {k: titanic.options["params"][k] for k in best["params"]} == best["params"]
    latest = titanic.versions()[0]
    assert latest["version"] == 2 and latest["serving"]
    assert {k: latest["params"][k] for k in best["params"]} == best["params"]
    assert latest["options"]["params"] == titanic.options["params"]
    assert latest["cv_score"]["value"] == best["score"] == answer["cv_score"]["value"]
    assert latest["cv_score"]["on"] == "3-fold cv" and latest["cv_score"]["metric"] == "accuracy"
    # the score is the one a retrain's cross-validation of those parameters gives
    cv_score, _, _ = training.cross_validate(titanic.options, titanic.data(), (), 3)
    assert cv_score is not None and cv_score["value"] == pytest.approx(best["score"], abs=1e-12)
    assert titanic.predict(titanic.data().head(3))  # the new version serves
    # a job of its own, with a report per candidate and fold, then the refit
    job = titanic.jobs()[0]
    assert job.action == "search" and job.status == "done" and job.writer
    seen = reports[job.id]
    fractions = [p for stage, p, _ in seen if stage == "search"]
    assert fractions == sorted(fractions) and set(fractions) >= {i / 12 for i in range(1, 13)}
    assert [s for s, *_ in seen if s != "search"][-1] == "save" and "fit" in {s for s, *_ in seen}
    overall = [o for *_, o in seen]
    assert overall == sorted(overall), seen


def test_a_budget_samples_the_grid(titanic: MLModel) -> None:
    job = titanic.search(
        {"C": ["0.01", "0.1", "1", "10"]}, n_iter=2, metric="f1_weighted", cv=2, wait=False
    )
    assert isinstance(job, Job) and job.action == "search"
    answer = job.result(120)
    assert answer["search"] == "random" and answer["folds"] == 2
    tried = [c["params"]["C"] for c in answer["candidates"]]
    assert len(tried) == len(set(tried)) == 2 and set(tried) <= {0.01, 0.1, 1, 10}
    assert answer["metric"] == answer["cv_score"]["metric"] == "f1_weighted"
    assert titanic.versions()[0]["cv_score"]["value"] == answer["best"]["score"]
    assert titanic.options["params"]["C"] == answer["best"]["params"]["C"]


BAD = [
    (None, {}, "got none"),
    ({"nope": [1]}, {}, "has no parameter 'nope'"),
    ({"C": []}, {}, "empty list"),
    ({"C": 0.1}, {}, "expected a list"),
    ({"C": ["abc"]}, {}, "'C' parameter of LogisticRegression must be"),
    ({"n_jobs": [1, 2]}, {}, "not searched"),
    ({"C": list(range(1, 202))}, {}, "at most 200 combinations"),
    ({"C": [1, 2]}, {"n_iter": 3}, "at most the grid's 2 combinations"),
    ({"C": [1, 2]}, {"n_iter": 0}, "n_iter"),
    ({"C": [1, 2]}, {"cv": 1}, "cv"),
    ({"C": [1, 2]}, {"metric": "nope"}, "scorer name"),
]


def test_a_bad_search_is_a_400_before_any_job(titanic: MLModel, store_dir: Path) -> None:
    before, versions, jobs = stored(store_dir), titanic.versions(), len(titanic.jobs())
    for grid, more, words in BAD:
        with pytest.raises(BadRequest, match="(?i)" + words.replace("(", r"\(")) as error:
            titanic.search(grid, **more)
        assert error.value.status == 400 and "Nothing was searched or stored" in str(error.value)
    assert stored(store_dir) == before and titanic.versions() == versions
    assert len(titanic.jobs()) == jobs  # no job was started


def test_a_model_without_data_or_class_fails_as_a_retrain(store_dir: Path, titanic_csv) -> None:
    empty = MLModel("empty", store=store_dir, class_="LogisticRegression", target_col="Survived")
    with pytest.raises(NotFound) as retrained:
        empty.retrain()
    with pytest.raises(NotFound) as searched:
        empty.search({"C": [1]})
    assert str(searched.value) == str(retrained.value)
    classless = MLModel("classless", data=str(titanic_csv), store=store_dir)
    with pytest.raises(BadRequest) as retrained:
        classless.retrain()
    with pytest.raises(BadRequest) as searched:
        classless.search({"C": [1]})
    assert str(searched.value) == str(retrained.value)


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_cancel_stops_the_search_and_stores_nothing(titanic: MLModel, store_dir: Path) -> None:
    titanic.configure(ENDLESS)
    before, versions = stored(store_dir), titanic.versions()
    with Pause("search") as pause:  # held at its first report; its worker fits forever
        job = titanic.search({"alpha": [0.0001, 0.001]}, wait=False)
        assert pause.reached.wait(60) and pause.job is job
        assert job.status == "running" and job.stage == "search"
        assert titanic.jobs()[0] is job and job.action == "search"
        workers = [psutil.Process(pid) for pid in titanic.runner.worker_pids()]  # its among them
        with pytest.raises(Conflict, match=job.id):  # a writer: another write is refused
            titanic.append(titanic.data().head(2))
        assert job.cancel()
    with pytest.raises(JobCancelled, match="nothing was stored"):
        job.result(60)
    assert job.status == "cancelled"
    deadline = time.monotonic() + 30
    while all(alive(p) for p in workers):  # the one fitting forever was killed
        assert time.monotonic() < deadline, "the search's worker was not stopped"
        time.sleep(0.05)
    assert stored(store_dir) == before and titanic.versions() == versions


# ------------------------------------------------------------------------------------ REST


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    MLModel(
        "titanic",
        data=str(titanic_csv),
        store=store_dir,
        executor="thread",
        cv_folds=0,
        **GUIDE_OPTIONS,
    )
    return {
        "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
        "MLWidgetApp": {"store_dir": str(store_dir)},
    }


async def post(jp_fetch, params: dict, body: object = None):
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    return await call(
        jp_fetch,
        "mlhandler",
        "titanic",
        method="POST",
        params={"_action": "search", **params},
        body=text,
        headers={"Content-Type": "application/json"},
    )


async def job_state(jp_fetch, job: str, *statuses: str) -> dict:
    """The job's state once its status is one of ``statuses`` (polled; a bound, no clock)."""
    deadline = time.monotonic() + 120
    while True:
        state = (await call(jp_fetch, "mlhandler", "titanic", params={"_job": job})).json()
        if state["status"] in statuses or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.1)


async def test_search_over_rest(jp_fetch, store_dir: Path) -> None:
    # the JSON body, answered when the job is done
    reply = await post(jp_fetch, {}, {"grid": {"C": [0.01, 1]}, "cv": 3})
    assert reply.code == 200, reply.text
    answer = reply.json()
    assert answer["version"] == 2 and len(answer["candidates"]) == 2 and answer["folds"] == 3
    versions = (await call(jp_fetch, "mlhandler", "titanic", params={"_versions": ""})).json()
    assert versions[0]["version"] == 2 and versions[0]["serving"]
    assert versions[0]["cv_score"]["value"] == answer["best"]["score"]
    assert versions[0]["params"]["C"] == answer["best"]["params"]["C"]
    # the query keys, as a job followed with ?_job
    reply = await post(
        jp_fetch, {"grid.C": "0.01,0.1,1", "n_iter": "2", "cv": "2", "_wait": "false"}
    )
    assert reply.code == 202, reply.text
    started = reply.json()
    assert started["action"] == "search" and reply.headers["Location"] == started["url"]
    state = await job_state(jp_fetch, started["job"], "done", "failed", "cancelled")
    assert state["status"] == "done", state
    assert state["result"]["version"] == 3 and state["result"]["search"] == "random"
    assert len(state["result"]["candidates"]) == 2
    jobs = (await call(jp_fetch, "mlhandler", "titanic", params={"_jobs": ""})).json()
    assert [j["action"] for j in jobs[:2]] == ["search", "search"]
    # bad requests: a clean 4xx, no job, nothing stored
    before = stored(store_dir)
    for params, body, status, words in [
        ({}, None, 400, ["got none", "grid.C=0.1,1,10"]),
        ({"grid.nope": "1"}, None, 400, ["no parameter 'nope'", "valid parameters"]),
        ({"grid.C": "1,,2"}, None, 400, ["empty value"]),
        ({"grid.C": "1,2", "n_iter": "5"}, None, 400, ["at most the grid's 2"]),
        ({}, "not json", 400, ["not JSON"]),
        ({}, [1, 2], 400, ["JSON object"]),
        ({}, {"grd": {"C": [1]}}, 400, ["'grd'", 'under "grid"']),
        ({"grid.C": "1"}, {"grid": {"C": [2]}}, 400, ["once", "got both"]),
        ({}, {"grid": {"memory": ["x"]}}, 403, ["'grid.memory'"]),
        ({}, {"grid": {"C": ["x"]}}, 400, ["must be a float"]),
    ]:
        assert_clean_error(await post(jp_fetch, params, body), status, *words)
    assert stored(store_dir) == before
    jobs_after = (await call(jp_fetch, "mlhandler", "titanic", params={"_jobs": ""})).json()
    assert len(jobs_after) == len(jobs)


async def test_cancel_a_search_over_rest(jp_fetch, store_dir: Path) -> None:
    MLModel.open("titanic", store=store_dir, executor="thread").configure(ENDLESS)
    before = stored(store_dir)
    with Pause("search") as pause:  # its worker fits forever meanwhile
        reply = await post(jp_fetch, {"_wait": "false"}, {"grid": {"alpha": [0.001, 0.01]}})
        assert reply.code == 202, reply.text
        job = reply.json()["job"]
        deadline = time.monotonic() + 60
        while not pause.reached.is_set():
            assert time.monotonic() < deadline, "the search never reported"
            await asyncio.sleep(0.05)
        state = (await call(jp_fetch, "mlhandler", "titanic", params={"_job": job})).json()
        assert state["status"] == "running" and state["stage"] == "search", state
        busy = await call(jp_fetch, "mlhandler", "titanic", method="PUT", params={"C": "2"})
        assert_clean_error(busy, 409, job)
        cancel = await call(jp_fetch, "mlhandler", "titanic", method="DELETE", params={"_job": job})
        assert cancel.code == 200, cancel.text
    state = await job_state(jp_fetch, job, "done", "failed", "cancelled")
    assert state["status"] == "cancelled" and "nothing was stored" in state["error"], state
    assert stored(store_dir) == before
