"""Jobs over REST, on a real Jupyter server whose jobs run in real worker processes.

A fit that never ends (an SGDClassifier with ``max_iter=2e9`` and no tolerance) runs as a job:
the server keeps answering, a second writer gets 409 at once naming the job, ``DELETE ?_job``
cancels it and its worker stops burning CPU, and the store is as it was. A worker killed with
SIGKILL fails its job, never the server.
"""

from __future__ import annotations

import asyncio
import collections
import io
import os
import signal
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER
from rest_helpers import assert_clean_error, call, stored, wait_until_async

from mlwidget import MLModel
from mlwidget.jobs import Job
from mlwidget.jobs.job import Pause

PASSENGER = {k: str(v) for k, v in GUIDE_PASSENGER.items()}
ENDLESS = {"class": "SGDClassifier", "max_iter": "2000000000", "tol": "null"}


def server_config(store_dir: Path, **app) -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
        "MLWidgetApp": {"store_dir": str(store_dir), **app},
    }


@pytest.fixture
def jp_server_config(store_dir: Path) -> dict:
    return server_config(store_dir)


@pytest.fixture
def models(store_dir: Path, titanic_csv: Path) -> Path:
    """Two Titanic models, ``titanic`` and ``endless``: the latter with the endless SGD staged
    (its fitted LogisticRegression keeps serving)."""
    for name in ("titanic", "endless"):
        MLModel(name, data=str(titanic_csv), store=store_dir, executor="thread", **GUIDE_OPTIONS)
    MLModel.open("endless", store=store_dir).configure(ENDLESS)
    return store_dir


def workers(serverapp) -> list[psutil.Process]:
    """The server's job workers (processes of its runner; not this test process's own)."""
    (app,) = serverapp.extension_manager.extension_apps["mlwidget_server"]
    return [psutil.Process(pid) for pid in app.registry.runner.worker_pids()]


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """CPU seconds the processes have spent (the gone ones count 0)."""
    out = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            out += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


async def job_state(jp_fetch, name: str, job: str) -> dict:
    reply = await call(jp_fetch, "mlhandler", name, params={"_job": job})
    assert reply.code == 200, reply.text
    return reply.json()


async def wait_for(jp_fetch, name: str, job: str, *statuses: str, within: float = 120) -> dict:
    """The job's state once its status is one of ``statuses`` (or after ``within`` seconds,
    a bound on a job that never gets there: the caller's assertion then fails)."""
    deadline = time.monotonic() + within
    while True:
        state = await job_state(jp_fetch, name, job)
        if state["status"] in statuses or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.1)


async def wait_until_fitting(jp_fetch, name: str, job: str) -> dict:
    """The job's state once it runs its fit (in a worker process)."""
    states: list[dict] = []

    async def fitting() -> bool:
        states.append(await job_state(jp_fetch, name, job))
        return states[-1]["status"] != "queued" and states[-1]["stage"] != "load"

    deadline = time.monotonic() + 120
    while not await fitting():
        assert time.monotonic() < deadline, f"the job never reached its fit: {states[-1]}"
        await asyncio.sleep(0.1)
    assert states[-1]["status"] == "running" and states[-1]["stage"] == "fit", states[-1]
    return states[-1]


async def start(jp_fetch, name: str, action: str = "retrain", **kwargs) -> dict:
    params = {"_action": action, "_wait": "false", **kwargs.pop("params", {})}
    reply = await call(jp_fetch, "mlhandler", name, method="POST", params=params, **kwargs)
    assert reply.code == 202, reply.text
    body = reply.json()
    assert reply.headers["Location"] == body["url"]
    assert body["url"].endswith(f"/mlhandler/{name}?_job={body['job']}")
    assert body["status"] in ("queued", "running") and body["action"] == action
    return body


async def put(jp_fetch, name: str, **params: str) -> None:
    reply = await call(jp_fetch, "mlhandler", name, method="PUT", params={"_model": "", **params})
    assert reply.code == 200, reply.text


async def test_an_endless_fit_is_a_job_the_server_outlives_and_cancels(
    jp_fetch, jp_serverapp, models
):
    before = stored(models, "endless")
    job = await start(jp_fetch, "endless")
    state = await wait_until_fitting(jp_fetch, "endless", job["job"])
    assert state["started"] and state["elapsed"] >= 0
    running = workers(jp_serverapp)
    assert running, "no worker process runs the job"
    spent = cpu_seconds(running)  # the fit burns CPU in its worker, not in the server:
    await wait_until_async(lambda: cpu_seconds(running) > spent + 0.3)

    # the server answers everything else at once
    checks = {
        "listing": await call(jp_fetch, "mlhandler"),
        "info": await call(jp_fetch, "mlhandler", "endless", params={"_model": ""}),
        "predict another model": await call(
            jp_fetch,
            "mlhandler",
            "titanic",
            method="POST",
            body=pd.DataFrame([GUIDE_PASSENGER]).to_json(orient="records"),
            headers={"Content-Type": "application/json"},
        ),
        "predict the busy model": await call(jp_fetch, "mlhandler", "endless", params=PASSENGER),
    }
    for label, reply in checks.items():
        assert reply.code == 200, (label, reply.text)
    assert checks["predict another model"].json() == [0]
    assert checks["predict the busy model"].json() == [0]  # the serving model answers

    # every other writer of the model gets 409 at once, naming the job
    writers = {
        "retrain": dict(method="POST", params={"_action": "retrain"}),
        "put": dict(method="PUT", params={"_model": "", "C": "2"}),
        "delete": dict(method="DELETE", params={"_model": ""}),
        "append": dict(
            method="POST",
            params={"_action": "append"},
            body=pd.read_csv(models.parent / "data" / "titanic.csv").head(2).to_csv(index=False),
            headers={"Content-Type": "text/csv"},
        ),
    }
    for label, request in writers.items():
        reply = await call(jp_fetch, "mlhandler", "endless", **request)
        error = assert_clean_error(reply, 409, job["job"])  # from the job board, not a lock wait
        assert error["job"] == job["job"], label

    listed = (await call(jp_fetch, "mlhandler", "endless", params={"_jobs": ""})).json()
    assert listed[0]["job"] == job["job"] and listed[0]["status"] == "running"

    # cancel: 200 with the job, then cancelled within seconds, and no CPU left burning
    reply = await call(
        jp_fetch, "mlhandler", "endless", method="DELETE", params={"_job": job["job"]}
    )
    assert reply.code == 200, reply.text
    assert reply.json()["job"] == job["job"]
    state = await wait_for(jp_fetch, "endless", job["job"], "cancelled")
    assert state["status"] == "cancelled", state
    assert "nothing was stored" in state["error"]
    assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in running)
    assert stored(models, "endless") == before

    # a finished job cannot be cancelled again; the model takes writers again
    again = await call(
        jp_fetch, "mlhandler", "endless", method="DELETE", params={"_job": job["job"]}
    )
    assert_clean_error(again, 409, "cancelled")
    await put(jp_fetch, "endless", **{"class": "LogisticRegression"})


async def test_a_worker_killed_mid_fit_fails_its_job_and_the_next_job_runs(
    jp_fetch, jp_serverapp, models
):
    before = stored(models, "endless")
    job = await start(jp_fetch, "endless")
    await wait_until_fitting(jp_fetch, "endless", job["job"])  # mid-fit, in its worker
    (worker,) = workers(jp_serverapp)
    os.kill(worker.pid, signal.SIGKILL)
    state = await wait_for(jp_fetch, "endless", job["job"], "failed")
    assert state["status"] == "failed", state
    assert "died" in state["error"] and "killed by signal 9" in state["error"]
    assert "nothing was stored" in state["error"]
    assert stored(models, "endless") == before

    # the next job runs (on a fresh worker) and its answer is the retrain's, as Gramex gives it
    await put(jp_fetch, "endless", **{"class": "LogisticRegression"})
    reply = await call(
        jp_fetch, "mlhandler", "endless", method="POST", params={"_action": "retrain"}
    )
    assert reply.code == 200, reply.text
    assert reply.json()["rows"] == 674 and reply.json()["score"] > 0.75  # rows after dropna
    listed = (await call(jp_fetch, "mlhandler", "endless", params={"_jobs": ""})).json()
    jobs = [j for j in listed if j["action"] == "retrain"]  # (not the crossval that follows)
    assert [j["status"] for j in jobs[:2]] == ["done", "failed"]
    assert all("result" not in j for j in jobs)  # ?_jobs lists jobs, not their answers
    done = await job_state(jp_fetch, "endless", jobs[0]["job"])
    assert done["result"]["rows"] == 674 and done["progress"] == 1


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[tuple]]:
    """Every progress report each job of this process (the server runs in it) receives, in
    order, by job id: the stage, and the job's ``progress`` and ``overall`` right after it
    (what ``?_job`` then answered). Every one, not the few a poller happens to catch."""
    seen: dict[str, list[tuple]] = collections.defaultdict(list)
    real = Job.report

    def report(self: Job, stage: str, progress: float | None = None) -> None:
        real(self, stage, progress)
        seen[self.id].append((stage, self.progress, self.overall))

    monkeypatch.setattr(Job, "report", report)
    return seen


async def test_jobs_report_real_progress_and_results(jp_fetch, models, titanic_csv, reports):
    reply = await call(
        jp_fetch,
        "mlhandler",
        "titanic",
        method="PUT",
        params={
            "_model": "",
            "class": "RandomForestClassifier",
            "n_estimators": "50",
            "random_state": "0",
        },
    )
    assert reply.code == 200, reply.text
    # the job waits at its first report of some trees grown, and ?_job is asked then
    with Pause("fit", when=lambda p: p is not None and 0 < p < 1) as pause:
        job = await start(jp_fetch, "titanic")
        await wait_until_async(pause.reached.is_set, what="the job growing its first trees")
        held = await job_state(jp_fetch, "titanic", job["job"])
        assert pause.holding  # answered while the job was provably mid-fit
    assert held["status"] == "running" and held["stage"] == "fit", held
    assert 0 < held["progress"] < 1 and 0 < held["overall"] < 1, held  # trees done, as they grow
    state = await wait_for(jp_fetch, "titanic", job["job"], "done", "failed", "cancelled")
    assert state["status"] == "done", state
    seen = reports[job["job"]]  # every report the job got, as ?_job then showed it
    fractions = [p for stage, p, _ in seen if stage == "fit" and p is not None]
    assert fractions == sorted(fractions)  # never backwards
    assert held["progress"] in [round(p, 4) for p in fractions] and fractions[-1] == 1, seen
    overall = [o for *_, o in seen] + [state["overall"]]
    assert overall == sorted(overall) and overall[-1] == 1  # the whole job, never backwards
    assert state["result"]["score"] > 0.9 and state["progress"] == 1
    assert state["finished"] >= state["started"] >= state["created"]

    # bulk predictions and a score as jobs: the same answers as the synchronous requests
    body = titanic_csv.read_bytes()
    csv = {"Content-Type": "text/csv"}
    sync = await call(jp_fetch, "mlhandler", "titanic", method="POST", body=body, headers=csv)
    predicted = await start(jp_fetch, "titanic", "predict", body=body, headers=csv)
    state = await wait_for(jp_fetch, "titanic", predicted["job"], "done", "failed")
    assert state["status"] == "done", state
    # the job shows the answer's size and where it is; the rows come from that URL
    assert state["result"]["rows"] == 891 and state["result"]["kind"] == "predictions"
    assert state["result"]["url"].endswith(f"?_job={predicted['job']}&_result")
    answer = await call(
        jp_fetch, "mlhandler", "titanic", params={"_job": predicted["job"], "_result": ""}
    )
    assert answer.json() == sync.json() and len(sync.json()) == 891
    assert state["result"]["bytes"] == len(answer.body)
    scored = await start(
        jp_fetch, "titanic", "score", body=body, headers=csv, params={"_metric": "f1_weighted"}
    )
    state = await wait_for(jp_fetch, "titanic", scored["job"], "done", "failed")
    sync = await call(
        jp_fetch,
        "mlhandler",
        "titanic",
        method="POST",
        body=body,
        headers=csv,
        params={"_action": "score", "_metric": "f1_weighted"},
    )
    assert state["result"] == sync.json() and state["result"]["metric"] == "f1_weighted"
    table = await start(
        jp_fetch, "titanic", "predict", body=body, headers=csv, params={"_format": "csv"}
    )
    state = await wait_for(jp_fetch, "titanic", table["job"], "done", "failed")
    assert state["result"]["kind"] == "records" and state["result"]["rows"] == 891
    given = list(pd.read_csv(io.BytesIO(body)).columns)
    assert state["result"]["columns"] == given
    # its rows in the format the POST asked for (CSV), or as JSON records when asked
    answer = await call(
        jp_fetch, "mlhandler", "titanic", params={"_job": table["job"], "_result": ""}
    )
    assert answer.headers["Content-Type"].startswith("text/csv")
    rows = pd.read_csv(io.BytesIO(answer.body))
    assert len(rows) == 891 and list(rows.columns) == given
    answer = await call(
        jp_fetch,
        "mlhandler",
        "titanic",
        params={"_job": table["job"], "_result": "", "_format": "json"},
    )
    assert len(answer.json()) == 891 and list(answer.json()[0]) == given
    assert [row["Survived"] for row in answer.json()] == rows["Survived"].tolist()


async def test_bad_job_requests_get_clear_errors(jp_fetch, models):
    reply = await call(
        jp_fetch,
        "mlhandler",
        "titanic",
        method="POST",
        params={"_action": "retrain", "_wait": "later"},
    )
    assert_clean_error(reply, 400, "_wait=false", "later")
    reply = await call(jp_fetch, "mlhandler", "titanic", params={"_job": "nope"})
    assert_clean_error(reply, 404, "no job", "_jobs")
    reply = await call(jp_fetch, "mlhandler", "titanic", method="DELETE", params={"_job": "nope"})
    assert_clean_error(reply, 404, "no job")
    # bad input is refused before any job exists
    reply = await call(
        jp_fetch,
        "mlhandler",
        "titanic",
        method="POST",
        params={"_action": "retrain", "_wait": "false", "target_col": "nope"},
    )
    assert reply.code == 202  # the target is checked by the fit: the job fails with the reason
    state = await wait_for(jp_fetch, "titanic", reply.json()["job"], "failed", "done")
    assert state["status"] == "failed" and "nope" in state["error"]
    reply = await call(
        jp_fetch,
        "mlhandler",
        "titanic",
        method="POST",
        params={"_action": "predict", "_wait": "false"},
    )
    assert_clean_error(reply, 400, "rows")
    assert (await call(jp_fetch, "mlhandler", "titanic", params={"_jobs": ""})).json()[0][
        "status"
    ] == "failed"


class TestBounds:
    @pytest.fixture
    def jp_server_config(self, store_dir: Path) -> dict:
        return server_config(store_dir, job_timeout=3, max_workers=1, max_queued=0)

    async def test_timeout_and_a_full_queue(self, jp_fetch, models):
        before = stored(models, "endless")
        job = await start(jp_fetch, "endless")
        # one worker, no queue: the next job is refused with 429
        reply = await call(
            jp_fetch,
            "mlhandler",
            "titanic",
            method="POST",
            params={"_action": "retrain", "_wait": "false"},
        )
        assert_clean_error(reply, 429, "max_workers", "try again")
        state = await wait_for(jp_fetch, "endless", job["job"], "failed", within=30)
        assert state["status"] == "failed" and "job_timeout" in state["error"], state
        assert stored(models, "endless") == before
        # a synchronous retrain that times out answers 408 with the reason
        reply = await call(
            jp_fetch, "mlhandler", "endless", method="POST", params={"_action": "retrain"}
        )
        assert_clean_error(reply, 408, "job_timeout")
        # the server goes on serving (a retrain on a fresh worker is checked above, without a
        # 3 s bound: a niced worker on a busy machine may not fit within it)
        reply = await call(jp_fetch, "mlhandler", "titanic", params=PASSENGER)
        assert reply.code == 200 and reply.json() == [0], reply.text
