"""Jobs on a real Dask cluster: ``distributed.LocalCluster`` with two worker processes as the
``dask_scheduler``, from Python and from the Jupyter server, and a cluster started from the CLI
(``dask scheduler``, two ``dask worker``: tests/dask_cli.py) for bulk jobs of a body."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER
from dask_cli import WAIT, CLICluster
from rest_helpers import call

from mlwidget import MLModel
from mlwidget.jobs.job import Pause

distributed = pytest.importorskip("distributed")

FOREST = {"class": "RandomForestClassifier", "n_estimators": 40, "random_state": 7}


@pytest.fixture(scope="module")
def cluster():
    """Two workers. A cancel restarts one; on a busy machine that took more than the 15 s the
    cluster waits for a lost worker, and it closed the worker's nanny: a worker short for good."""
    import dask

    with (
        dask.config.set({"distributed.deploy.lost-worker-timeout": f"{WAIT}s"}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
    ):
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster) as client:
        yield client


def test_a_retrain_on_dask_gives_the_local_model(store_dir, titanic_csv, cluster, client):
    local = MLModel(
        "local", data=str(titanic_csv), store=store_dir, executor="process", **GUIDE_OPTIONS
    )
    local.configure(FOREST)
    on_dask = MLModel(
        "dask", data=str(titanic_csv), store=store_dir, executor="dask",
        dask_scheduler=cluster.scheduler_address, **GUIDE_OPTIONS,
    )  # fmt: skip
    on_dask.configure(FOREST)
    assert on_dask.runner.executor == "dask"
    job = on_dask.retrain(wait=False)
    answer = job.result(120)
    assert job.status == "done" and job.progress == 1
    assert answer["score"] == local.retrain()["score"]
    rows = local.data()
    assert on_dask.predict_proba(rows) == local.predict_proba(rows)


def test_the_environment_chooses_dask(store_dir, titanic_csv, cluster, monkeypatch):
    monkeypatch.setenv("MLWIDGET_DASK_SCHEDULER", cluster.scheduler_address)
    model = MLModel("env", data=str(titanic_csv), store=store_dir, **GUIDE_OPTIONS)
    assert model.runner.executor == "dask"
    assert model.runner.dask_scheduler == cluster.scheduler_address


def test_a_forest_spreads_its_trees_over_both_workers(store_dir, cluster, client):
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(4000, 6)), columns=list("abcdef"))
    table["y"] = (table["a"] + table["b"] > 0).astype(int)
    model = MLModel(
        "forest", data=table, store=store_dir, target_col="y", executor="dask",
        dask_scheduler=cluster.scheduler_address,
    )  # fmt: skip
    model.configure({"class": "RandomForestClassifier", "n_estimators": 200, "n_jobs": -1})
    with distributed.get_task_stream(client) as stream:
        model.retrain()
    tree_tasks = [t for t in stream.data if not str(t["key"]).startswith("mlwidget-")]
    assert {t["worker"] for t in tree_tasks} == set(client.scheduler_info()["workers"])
    assert model.info()["fitted"]["model"] == "RandomForestClassifier"
    assert model.score(table)["score"] > 0.95


def _slow_to_send(payload, report):
    """A job whose result takes a second to serialise on the worker, as a 100-tree forest on
    100,000 rows (107 MB) takes most of one to gather."""

    class Slow:  # defined here, so it travels by value (the workers cannot import tests/)
        def __reduce__(self):
            import time

            time.sleep(1.0)
            return (str, ("sent",))

    return Slow()


def test_a_result_slower_to_gather_than_a_poll_still_arrives(cluster, client):
    """The driver polls for the task, not for its result: a gather is never cut short and
    restarted (a poll's timeout once aborted every gather of a large forest, for ever)."""
    from mlwidget.jobs import Job, Runner

    runner = Runner("dask", dask_scheduler=cluster.scheduler_address)
    try:
        job = Job("retrain", "slow", ("dask-test", "slow"), writer=False)
        runner.start(job, lambda: {"rows": 1}, _slow_to_send, lambda result, _payload: result)
        assert job.result(60) == "sent"
        assert job.status == "done"
        deadline = time.monotonic() + 60  # and the cluster lets go of it (a bound)
        while any(str(key).startswith(f"mlwidget-retrain-{job.id}") for key in client.who_has()):
            assert time.monotonic() < deadline, client.who_has()
            time.sleep(0.1)
    finally:
        runner.shutdown()


def test_cancel_on_dask_frees_the_worker(store_dir, titanic_csv, cluster, client):
    model = MLModel(
        "endless", data=str(titanic_csv), store=store_dir, executor="dask",
        dask_scheduler=cluster.scheduler_address, **GUIDE_OPTIONS,
    )  # fmt: skip
    model.configure({"class": "SGDClassifier", "max_iter": 2_000_000_000, "tol": None})
    before = model.info()["fitted"]
    job = model.retrain(wait=False)
    deadline = time.monotonic() + 30
    while not client.processing() or not any(client.processing().values()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert job.cancel()
    with pytest.raises(Exception, match="cancelled"):
        job.result(30)
    deadline = time.monotonic() + 30
    while any(client.processing().values()):  # the worker that ran it was restarted
        assert time.monotonic() < deadline, client.processing()
        time.sleep(0.2)
    assert model.info()["fitted"] == before
    client.wait_for_workers(2, timeout=60)


class TestServer:
    @pytest.fixture
    def jp_server_config(self, store_dir: Path, cluster) -> dict:
        return {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {
                "store_dir": str(store_dir),
                "executor": "dask",
                "dask_scheduler": cluster.scheduler_address,
            },
        }

    async def test_bulk_predictions_go_through_partitions_in_order(
        self, jp_fetch, store_dir, titanic_csv, client
    ):
        model = MLModel("titanic", data=str(titanic_csv), store=store_dir, **GUIDE_OPTIONS)
        rows = pd.read_csv(titanic_csv)
        big = rows.sample(200_000, replace=True, random_state=3).reset_index(drop=True)
        expected = model.predict(big)
        body = big.to_csv(index=False).encode()
        with distributed.get_task_stream(client) as stream:
            reply = await call(
                jp_fetch, "mlhandler", "titanic", method="POST", body=body,
                headers={"Content-Type": "text/csv"}, params={"_wait": "false"},
            )  # fmt: skip
            assert reply.code == 202, reply.text
            job = reply.json()["job"]
            while True:
                state = (await call(jp_fetch, "mlhandler", "titanic", params={"_job": job})).json()
                if state["status"] not in ("queued", "running"):
                    break
                await asyncio.sleep(0.2)
        assert state["status"] == "done", state
        assert state["result"]["rows"] == 200_000
        answer = await call(jp_fetch, "mlhandler", "titanic", params={"_job": job, "_result": ""})
        assert answer.json() == expected and len(expected) == 200_000
        parts = [t for t in stream.data if "-part-" in str(t["key"])]
        assert len(parts) == 4  # 50,000 rows each
        assert len({t["worker"] for t in parts}) == 2

    async def test_a_plain_post_of_a_large_csv_goes_through_partitions_too(
        self, jp_fetch, store_dir, titanic_csv, client, monkeypatch
    ):
        from mlwidget_server import streaming

        monkeypatch.setattr(streaming, "STREAM_BYTES", 1_000_000)  # "large": over 1 MB here
        model = MLModel("titanic", data=str(titanic_csv), store=store_dir, **GUIDE_OPTIONS)
        rows = pd.read_csv(titanic_csv)
        big = rows.sample(120_000, replace=True, random_state=4).reset_index(drop=True)
        expected = model.predict(big)
        with distributed.get_task_stream(client) as stream:
            reply = await call(
                jp_fetch, "mlhandler", "titanic", method="POST", headers={"Content-Type": "text/csv"},
                body=big.to_csv(index=False).encode(),
            )  # fmt: skip
        assert reply.code == 200, reply.text
        assert reply.json() == expected  # the answer a plain POST gives, every row in order
        parts = [t for t in stream.data if "-part-" in str(t["key"])]
        assert len(parts) == 3  # 40,000 rows each, on the cluster

    async def test_a_get_during_a_cancel_answers_before_the_cancel_does(
        self, jp_fetch, store_dir, titanic_csv, client
    ):
        """A cancel restarts the worker running the job, which takes seconds; it once ran on
        the event loop, and a one-row GET sent meanwhile waited for it (4.7 s, median 6 ms).
        Now the GET's answer arrives while the cancel is still under way."""
        model = MLModel("titanic", data=str(titanic_csv), store=store_dir, **GUIDE_OPTIONS)
        model.configure({"class": "SGDClassifier", "max_iter": 2_000_000_000, "tol": None})
        started = await call(
            jp_fetch, "mlhandler", "titanic", method="POST",
            params={"_action": "retrain", "_wait": "false"},
        )  # fmt: skip
        assert started.code == 202, started.text
        job = started.json()["job"]
        restarts_before = len(restarts(client))
        while not any(client.processing().values()):  # the fit runs on a worker
            await asyncio.sleep(0.1)
        cancel = asyncio.ensure_future(
            call(jp_fetch, "mlhandler", "titanic", method="DELETE", params={"_job": job})
        )
        get = asyncio.ensure_future(call(jp_fetch, "mlhandler", "titanic", params=GUIDE_PASSENGER))
        done, _ = await asyncio.wait({cancel, get}, return_when=asyncio.FIRST_COMPLETED)
        assert get in done and cancel not in done
        assert get.result().code == 200, get.result().text
        assert (await cancel).code == 200
        state = (await call(jp_fetch, "mlhandler", "titanic", params={"_job": job})).json()
        assert state["status"] == "cancelled"
        # one restart of the one worker: the cancel and the job's poll both stopped the task,
        # and each restarted the worker (a second restart could kill the worker the first had
        # just started; under load the cluster then stayed one worker short)
        assert len(restarts(client)) == restarts_before + 1, restarts(client)[restarts_before:]
        client.wait_for_workers(2, timeout=WAIT)


def restarts(client) -> list[dict]:
    """The scheduler's record of the worker restarts it was asked for."""

    def asked(dask_scheduler) -> list[dict]:  # runs in the scheduler (other events do not pickle)
        events = dask_scheduler.get_events("all")
        return [
            m for _, m in events if isinstance(m, dict) and m.get("action") == "restart-workers"
        ]

    return client.run_on_scheduler(asked)


# ----------------------------------------------------------- a cluster started from the CLI


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory):
    """``dask scheduler`` and two ``dask worker`` (one thread each), and a client to watch."""
    cluster = CLICluster(tmp_path_factory.mktemp("dask-cli"))
    try:
        cluster.start_scheduler()
        cluster.start_worker()
        cluster.start_worker()
        with distributed.Client(cluster.address, set_as_default=False, timeout=WAIT) as watch:
            watch.wait_for_workers(2, timeout=WAIT)
            yield cluster, watch
    finally:
        cluster.close()


def frames_held(dask_worker) -> list[tuple[int, list[str]]]:
    """The tables a worker holds: their rows and columns (run on each worker)."""
    return [
        (len(value), [str(c) for c in value.columns])
        for value in list(dask_worker.data.values())
        if isinstance(value, pd.DataFrame)
    ]


def until(condition, what: str):
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def test_a_body_bulk_job_is_split_over_both_workers_which_write_its_answers(
    store_dir, titanic_csv, cli_cluster
):
    """Rows sent with a bulk job (``start_job``, as ``POST ?_action=predict&_wait=false``)
    on a cluster deployed from the CLI: each worker gets half of them (only the features the
    model reads, unless the answer echoes every column), writes its partition's answers beside
    the job's result file (the store is on a path the workers see too), and the result is those
    parts joined: the process executor's answers, row for row, in order, and no part left."""
    cluster, watch = cli_cluster
    local = MLModel(
        "titanic", data=str(titanic_csv), store=store_dir, executor="process", **GUIDE_OPTIONS
    )
    on_dask = MLModel.open(
        "titanic", store=store_dir, executor="dask", dask_scheduler=cluster.address
    )
    features = [f["name"] for f in on_dask.snapshot().schema]
    body = pd.read_csv(titanic_csv).sample(60_001, replace=True, random_state=5)
    body = body.reset_index(drop=True)
    staging = store_dir / "titanic" / ".jobs"
    workers = set(watch.scheduler_info()["workers"])
    for action in ("predict", "predict_proba", "predict_table"):
        expected = local.start_job(action, body)
        expected_rows = expected.result(3 * WAIT)
        until(lambda: not any(watch.run(frames_held).values()), "the last job's rows released")
        with (
            distributed.get_task_stream(watch) as stream,
            Pause("predict", when=lambda progress: progress == 1) as pause,
        ):
            job = on_dask.start_job(action, body)
            assert pause.reached.wait(3 * WAIT), job.to_dict()
            # every partition is done and not joined yet: the workers wrote them beside the result
            parts = sorted(path.name for path in staging.glob(f"result-{job.id}-*.part-*"))
            held = [frame for frames in watch.run(frames_held).values() for frame in frames]
            pause.release()
            answer = job.result(3 * WAIT)
        assert job.status == "done", job.to_dict()
        assert answer == expected_rows and len(answer) == 60_001, action
        assert job.to_dict()["result"]["rows"] == 60_001
        assert job.stored.columns == expected.stored.columns
        assert [name.rsplit(".", 1)[-1] for name in parts] == ["part-0", "part-1"], parts
        assert sorted(rows for rows, _ in held) == [30_000, 30_001], held
        columns = list(body.columns) if action == "predict_table" else features
        assert all(names == columns for _, names in held), (action, held)
        ran = {t["worker"] for t in stream.data if f"{job.id}-part-" in str(t["key"])}
        assert ran == workers, stream.data
        assert not list(staging.glob("*.part-*")), list(staging.iterdir())
