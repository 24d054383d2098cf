"""The Dask executor against a cluster's faults, on a cluster deployed as users deploy one:
``dask scheduler`` and ``dask worker`` processes started from the CLI (tests/dask_cli.py), one
thread each. Every wait is on a state or an event, with a generous bound (dask_cli.WAIT)."""

from __future__ import annotations

import copy
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GUIDE_OPTIONS
from dask_cli import ENV_ADDRESS, WAIT, CLICluster, gated

from mlwidget import MLModel
from mlwidget.errors import MLWidgetError
from mlwidget.jobs import Job, Runner, WorkerDied
from mlwidget.jobs.dask_cluster import version_problems

distributed = pytest.importorskip("distributed")


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[CLICluster]:
    cluster = CLICluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def watch(cli: CLICluster) -> Iterator[Callable[[], Any]]:
    """``watch()``: a client of the test's own on the CLI cluster (closed at the end)."""
    made: list[Any] = []

    def client() -> Any:
        if not made:
            made.append(distributed.Client(cli.address, set_as_default=False, timeout=WAIT))
        return made[0]

    yield client
    for client_ in made:
        client_.close(timeout=5)


def until(condition: Callable[[], Any], what: str, bound: float = WAIT) -> Any:
    deadline = time.monotonic() + bound
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def running_on(client: Any, key_part: str) -> str:
    """The worker processing a task whose key has ``key_part``, once one is."""

    def where() -> str | None:
        for worker, keys in client.processing().items():
            if any(key_part in str(key) for key in keys):
                return str(worker)
        return None

    return until(where, f"a task {key_part} running")


def gated_job(runner: Runner, go: Path) -> Job:
    job = Job("retrain", "gated", ("dask-faults", str(go)), writer=False)
    runner.start(job, lambda: {"go": str(go)}, gated, lambda result, _payload: result)
    return job


# ----------------------------------------------------------------------- the scheduler


def test_a_job_after_the_scheduler_came_back_connects_again(cli, store_dir, titanic_csv):
    cli.start_scheduler()
    cli.start_worker()
    model = MLModel(
        "again", data=str(titanic_csv), store=store_dir, executor="dask",
        dask_scheduler=cli.address, **GUIDE_OPTIONS,
    )  # fmt: skip
    runner = model.runner
    try:
        assert model.retrain(wait=False).result(WAIT)["score"] > 0.7
        assert runner.dask is not None
        cli.kill_scheduler()
        cli.kill_workers()
        # the client tries to reconnect for its timeout, then closes for good
        until(lambda: runner.dask.connection.status == "closed", "the client closed")
        down = model.retrain(wait=False)
        with pytest.raises(
            MLWidgetError, match=f"Could not reach the Dask scheduler at {cli.address}"
        ):
            down.result(WAIT)
        assert down.error_status == 503
        cli.start_scheduler()  # on the same address
        cli.start_worker()
        job = model.retrain(wait=False)
        assert job.result(WAIT)["score"] > 0.7
        assert job.status == "done" and runner.dask.connection.status == "running"
    finally:
        runner.shutdown()


# ----------------------------------------------------------------------- workers


def test_a_job_whose_worker_dies_is_sent_again_to_another(cli, watch, tmp_path, caplog):
    caplog.set_level(logging.WARNING, "mlwidget.jobs")
    cli.start_scheduler()
    cli.start_worker()
    cli.start_worker()
    client = watch()
    client.wait_for_workers(2, timeout=WAIT)
    pids = client.run(os.getpid)
    runner = Runner("dask", dask_scheduler=cli.address)
    try:
        go = tmp_path / "go"
        job = gated_job(runner, go)
        first = running_on(client, f"mlwidget-retrain-{job.id}")
        os.kill(pids[first], signal.SIGKILL)
        go.touch()
        answer = job.result(3 * WAIT)
        assert job.status == "done"
        assert answer != first and answer in pids  # the other worker
        assert f"job {job.id} lost its Dask worker (worker {first} left" in caplog.text
    finally:
        runner.shutdown()


def test_a_job_whose_worker_dies_twice_fails_naming_it(cli, watch, tmp_path):
    cli.start_scheduler()
    cli.start_worker()
    cli.start_worker()
    client = watch()
    client.wait_for_workers(2, timeout=WAIT)
    pids = client.run(os.getpid)
    runner = Runner("dask", dask_scheduler=cli.address)
    try:
        job = gated_job(runner, tmp_path / "never")
        first = running_on(client, f"mlwidget-retrain-{job.id}")
        os.kill(pids[first], signal.SIGKILL)
        second = running_on(client, f"mlwidget-retrain-{job.id}-retry")
        os.kill(pids[second], signal.SIGKILL)
        with pytest.raises(WorkerDied) as failed:
            job.result(3 * WAIT)
        message = str(failed.value)
        assert f"The Dask worker {second} running job {job.id}" in message
        assert "connection to the scheduler closed" in message and "killed" in message
        assert f"after worker {first} left the same way" in message
        assert "FutureCancelledError" not in message and "forgotten" not in message
        assert job.to_dict()["error"] == message
    finally:
        runner.shutdown()


def test_a_job_waits_for_a_worker_to_join(cli, tmp_path, caplog):
    caplog.set_level(logging.INFO, "mlwidget.jobs")
    cli.start_scheduler()  # and no worker, until the job waits for one
    runner = Runner("dask", dask_scheduler=cli.address, dask_worker_wait=3 * WAIT)
    try:
        go = tmp_path / "go"
        go.touch()
        job = gated_job(runner, go)
        until(lambda: f"job {job.id} waits up to" in caplog.text, "the job waiting")
        assert job.status == "running"
        cli.start_worker()  # as an autoscaler would
        assert job.result(3 * WAIT).startswith("tcp://127.0.0.1:")
        assert job.status == "done"
    finally:
        runner.shutdown()


def test_with_no_worker_a_job_fails_naming_the_scheduler(cli, tmp_path):
    cli.start_scheduler()
    runner = Runner("dask", dask_scheduler=cli.address, dask_worker_wait=0.5)
    try:
        job = gated_job(runner, tmp_path / "go")
        with pytest.raises(MLWidgetError, match="No Dask workers") as failed:
            job.result(WAIT)
        assert f"the Dask scheduler at {cli.address} had none for 0.5 s" in str(failed.value)
        assert "(dask_worker_wait)" in str(failed.value) and job.error_status == 503
    finally:
        runner.shutdown()


# ----------------------------------------------------------------------- versions


def fake_distribution(folder: Path, name: str, version: str) -> Path:
    """A folder whose ``name`` distribution (dist-info metadata) says ``version``: first on a
    worker's PYTHONPATH, it is the version that worker reports."""
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return folder


def test_a_worker_with_another_mlwidget_fails_the_job_naming_both(cli, watch, tmp_path, caplog):
    from dask_cli import TESTS

    cli.start_scheduler()
    other = fake_distribution(tmp_path / "other", "mlwidget", "0.0.1")
    cli.start_worker(env={"PYTHONPATH": f"{other}{os.pathsep}{TESTS}"})
    client = watch()
    client.wait_for_workers(1, timeout=WAIT)
    (worker,) = client.nthreads()
    runner = Runner("dask", dask_scheduler=cli.address)
    try:
        go = tmp_path / "go"
        go.touch()
        job = gated_job(runner, go)
        with pytest.raises(MLWidgetError) as failed:
            job.result(WAIT)
        message = str(failed.value)
        import mlwidget

        assert f"worker {worker} has mlwidget 0.0.1, the server {mlwidget.__version__}" in message
        assert "Install the server's versions on those workers" in message
        assert job.error_status == 503 and job.to_dict()["error"] == message
        assert f"worker {worker} has mlwidget 0.0.1" in caplog.text  # and in the server's log
    finally:
        runner.shutdown()


def test_version_problems_on_a_real_clusters_versions(cli, watch):
    cli.start_scheduler()
    cli.start_worker()
    client = watch()
    client.wait_for_workers(1, timeout=WAIT)
    (worker,) = client.nthreads()
    versions = client.get_versions(check=False, packages=["mlwidget", "scikit-learn"])
    assert version_problems(versions) == []  # the same environment
    altered = copy.deepcopy(versions)
    packages = altered["workers"][worker]["packages"]
    packages["mlwidget"] = None  # another virtualenv, without mlwidget
    packages["scikit-learn"] = "1.0.2"
    packages["python"] = "3.9.18.final.0"
    problems = version_problems(altered)
    mine = versions["client"]["packages"]
    assert problems == [
        f"worker {worker} has no mlwidget (the server has {mine['mlwidget']})",
        f"worker {worker} has scikit-learn 1.0.2, the server {mine['scikit-learn']}",
        f"worker {worker} has python 3.9, the server {'.'.join(mine['python'].split('.')[:2])}",
    ]
    assert version_problems(altered, workers=["tcp://elsewhere:1"]) == []


# ----------------------------------------------------------------------- managed clusters


def test_dask_cluster_may_return_a_client(cli, tmp_path, monkeypatch):
    cli.start_scheduler()
    cli.start_worker()
    monkeypatch.setenv(ENV_ADDRESS, cli.address)
    runner = Runner("dask", dask_cluster="dask_cli:connect")
    try:
        go = tmp_path / "go"
        go.touch()
        job = gated_job(runner, go)
        assert job.result(WAIT).startswith("tcp://127.0.0.1:")
        dashboard = job.to_dict()["dashboard"]
        assert dashboard.startswith("http://127.0.0.1:") and dashboard.endswith("/status")
        assert runner.dask is not None and runner.dask.connection.where.endswith(cli.address)
    finally:
        runner.shutdown()


def test_dask_cluster_is_an_import_path():
    runner = Runner("dask", dask_cluster="dask_cli.connect")
    try:
        job = gated_job(runner, Path("never"))
        with pytest.raises(MLWidgetError, match="Expected dask_cluster to be an import path"):
            job.result(WAIT)
    finally:
        runner.shutdown()


def test_dask_cluster_may_return_a_cluster_object(tmp_path, monkeypatch):
    import dask_cli

    made: list[Any] = []

    def cluster() -> Any:
        made.append(dask_cli.local_cluster())
        return made[-1]

    runner = Runner("dask", dask_cluster=cluster)
    try:
        go = tmp_path / "go"
        go.touch()
        job = gated_job(runner, go)
        assert job.result(WAIT).startswith("tcp://127.0.0.1:")
        assert len(made) == 1 and job.to_dict()["dashboard"] == made[0].dashboard_link
        assert runner.dask is not None
        assert runner.dask.connection.where.endswith(made[0].scheduler_address)
    finally:
        runner.shutdown()
        for cluster_ in made:
            cluster_.close()


class TestServer:
    @pytest.fixture
    def jp_server_config(self, store_dir: Path, cli: CLICluster, monkeypatch) -> dict:
        cli.start_scheduler()
        cli.start_worker()
        monkeypatch.setenv(ENV_ADDRESS, cli.address)
        return {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {
                "store_dir": str(store_dir),
                "dask_cluster": "dask_cli:connect",  # implies executor="dask"
                "dask_worker_wait": WAIT,
            },
        }

    async def test_a_dask_jobs_info_links_the_dashboard(self, jp_fetch, store_dir, titanic_csv):
        import asyncio

        from rest_helpers import call

        MLModel("titanic", data=str(titanic_csv), store=store_dir, executor="thread",
                **GUIDE_OPTIONS)  # fmt: skip
        reply = await call(
            jp_fetch, "mlhandler", "titanic", method="POST",
            params={"_action": "retrain", "_wait": "false"},
        )  # fmt: skip
        assert reply.code == 202, reply.text
        job = reply.json()["job"]
        deadline = time.monotonic() + WAIT
        while True:
            state = (await call(jp_fetch, "mlhandler", "titanic", params={"_job": job})).json()
            if state["status"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.2)
        assert state["status"] == "done", state
        assert state["dashboard"].startswith("http://127.0.0.1:"), state
        listed = (await call(jp_fetch, "mlhandler", "titanic", params={"_jobs": ""})).json()
        assert listed[0]["dashboard"] == state["dashboard"]


def test_dask_cluster_and_worker_wait_from_the_environment(monkeypatch):
    from mlwidget.jobs import resolve
    from mlwidget.jobs.dask_cluster import worker_wait

    monkeypatch.delenv("MLWIDGET_EXECUTOR", raising=False)
    monkeypatch.delenv("MLWIDGET_DASK_SCHEDULER", raising=False)
    assert resolve(None, None, "process", "dask_cli:connect") == ("dask", None)
    monkeypatch.setenv("MLWIDGET_DASK_CLUSTER", "dask_cli:connect")
    assert resolve(None, None, "process") == ("dask", None)
    monkeypatch.setenv("MLWIDGET_DASK_WORKER_WAIT", "2.5")
    assert worker_wait(None) == 2.5 and worker_wait(0) == 0.0
    monkeypatch.setenv("MLWIDGET_DASK_WORKER_WAIT", "soon")
    with pytest.raises(ValueError, match="MLWIDGET_DASK_WORKER_WAIT to be a number of seconds"):
        worker_wait(None)
