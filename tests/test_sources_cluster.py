"""Sources on a real Dask cluster (``dask scheduler`` and two ``dask worker`` processes started
from the CLI): a bulk job's workers read the source's partitions and write the answers
themselves, so the process that coordinates holds none of the rows; the answers are the ones
the process executor gives."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from dask_cli import WAIT, CLICluster
from test_sources import answers, make_rows, write_source

from mlwidget import MLModel, datasets

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.xdist_group("sources_cluster")

BIG = 2_000_000  # rows of the large source: ~170 MB as a pandas frame


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[CLICluster]:
    cli = CLICluster(tmp_path_factory.mktemp("cluster"))
    try:
        cli.start_scheduler()
        cli.start_worker()
        cli.start_worker()
        with distributed.Client(cli.address, set_as_default=False, timeout=WAIT) as client:
            client.wait_for_workers(2, timeout=WAIT)
        yield cli
    finally:
        cli.close()


@pytest.fixture
def sources(tmp_path: Path) -> Iterator[dict[str, Path]]:
    write_source(tmp_path / "train", make_rows(6_000, 0))
    paths = {"train": tmp_path / "train", "out": tmp_path / "out"}
    datasets.configure({name: str(path) for name, path in paths.items()})
    yield paths
    datasets.configure({})


def trained(store_dir: Path, executor: str, **kwargs) -> MLModel:
    model = MLModel(
        "sales",
        store=store_dir,
        class_="LogisticRegression",
        target_col="y",
        exclude=["id"],
        executor=executor,
        **kwargs,
    )
    if not model.info()["fitted"]:
        model.retrain(source="train")
    return model


def test_a_bulk_job_on_dask_writes_what_the_process_executor_writes(cluster, sources, store_dir):
    local = trained(store_dir, "thread").predict_source("train", "out", keys=["id"], proba=True)
    on_dask = trained(store_dir, "dask", dask_scheduler=cluster.address)
    with distributed.Client(cluster.address, set_as_default=False, timeout=WAIT) as watch:
        with distributed.get_task_stream(client=watch) as stream:
            remote = on_dask.predict_source("train", "out", keys=["id"], proba=True)
            # the same model again: the workers keep the version they were sent
            again = on_dask.predict_source("train", "out", keys=["id"])
    assert remote["rows"] == local["rows"] == 6_000 and remote["folder"] != local["folder"]
    expected = answers(sources["out"], local["folder"]).sort_values("id", ignore_index=True)
    got = answers(sources["out"], remote["folder"]).sort_values("id", ignore_index=True)
    pd.testing.assert_frame_equal(got, expected)
    assert again["rows"] == 6_000
    workers = {task["worker"] for task in stream.data if "mlwidget-source" in task["key"]}
    assert len(workers) == 2, f"the partitions ran on {workers}"


COORDINATOR = textwrap.dedent(
    """
    import json, resource, sys
    from mlwidget import MLModel, datasets

    store, scheduler, big, out = sys.argv[1:5]
    datasets.configure({"big": big, "out": out})
    model = MLModel("sales", store=store, executor="dask", dask_scheduler=scheduler)
    model.predict_source("big", "out", keys=["id"])  # connect; the workers load the model
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = model.predict_source("big", "out", keys=["id"])
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": result["rows"], "grew_kb": after - before}))
    """
)


def test_the_coordinator_never_holds_the_rows_of_a_large_source(
    cluster, sources, store_dir, tmp_path
):
    """The process that starts a bulk job (here a plain Python one; the Jupyter server runs
    the same code) keeps its peak memory while 2,000,000 rows are predicted: its peak grows
    by less than a tenth of the source's size in memory."""
    trained(store_dir, "thread")
    big = make_rows(BIG, 5)
    size_kb = big.memory_usage(deep=True).sum() // 1024
    write_source(tmp_path / "big", big, files=4)
    del big
    script = [sys.executable, "-c", COORDINATOR, str(store_dir), cluster.address]
    script += [str(tmp_path / "big"), str(sources["out"])]
    run = subprocess.run(script, capture_output=True, text=True, timeout=20 * WAIT)
    assert run.returncode == 0, run.stderr[-3000:]
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    assert measured["rows"] == BIG
    assert measured["grew_kb"] < size_kb / 10, (measured, size_kb)


def test_a_dask_worker_that_sees_the_store_writes_the_fitted_model_itself(
    cluster, sources, store_dir, monkeypatch
):
    """The workers run on this machine, so they see the store (they find its id there): the
    fitted model goes from the worker into the model's staging folder and is moved in at the
    commit; the pipeline is not sent back to the process that started the job."""
    from mlwidget import tasks

    committed: list = []

    def store_fit(tx, table, result, new_data, metric):  # observes, then does the real work
        committed.append((result.pipeline, result.staged))
        return real(tx, table, result, new_data, metric)

    real = tasks.store_fit
    monkeypatch.setattr(tasks, "store_fit", store_fit)
    model = trained(store_dir, "dask", dask_scheduler=cluster.address)  # its first fit
    assert model.retrain(source="train")["rows"] == 6_000
    assert len(committed) == 2
    pipeline, staged = committed[-1]
    assert pipeline is None and Path(staged).parent == store_dir / "sales" / ".jobs"
    assert not Path(staged).exists()  # moved into the store
    assert len(model.predict(make_rows(3, 9).drop(columns="y"))) == 3
