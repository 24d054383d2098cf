"""The ceilings are one ``limits.Limits``, and every job carries the one it was started under:
a worker process (reused across jobs) or a Dask worker applies the caller's ceilings, never
its own defaults. ``start_job("predict_proba")`` on the process executor answered 18,000 cells
where ``predict_proba`` answered 413 (max_table_cells=10,000)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
from rest_helpers import assert_clean_error, call

from mlwidget import BadRequest, MLModel, MLWidgetError, PayloadTooLarge, limits
from mlwidget.tables import read_table

# the process's default limits are what these tests are about (cv_folds among them)
pytestmark = pytest.mark.cross_validates

CSV = {"Content-Type": "text/csv"}
# 60 classes: probabilities for 300 rows are 18,000 cells, over a ceiling of 10,000
TRAIN = pd.DataFrame({"x": range(60), "y": [f"c{i}" for i in range(60)]})
ROWS = pd.DataFrame({"x": [i % 60 for i in range(300)]})
# a categorical of 20 values: one-hot grouped under max_categories=5
WIDE = pd.DataFrame(
    {"code": [f"k{i % 20}" for i in range(200)], "x": range(200), "y": [i % 2 for i in range(200)]}
)


@pytest.fixture
def restore_limits():
    """The process default comes back after the test (a server sets it too)."""
    before = limits.current()
    yield
    limits.configure(before)


def many_classes(store_dir, executor: str, **kwargs) -> MLModel:
    return MLModel(
        "many", data=TRAIN, store=store_dir, class_="DecisionTreeClassifier", target_col="y",
        executor=executor, **kwargs,
    )  # fmt: skip


def wide_model(store_dir, executor: str, **kwargs) -> MLModel:
    model = MLModel("wide", store=store_dir, executor=executor, **kwargs)
    model.configure(class_="LogisticRegression", target_col="y", cats=["code"])
    return model


def refused(call_it) -> MLWidgetError:
    with pytest.raises(MLWidgetError) as caught:
        call_it()
    assert caught.value.status == 413, caught.value
    return caught.value


# ------------------------------------------------------------------------- the bug, in Python


def test_a_predict_proba_job_in_a_worker_process_is_held_to_max_table_cells(
    store_dir, restore_limits
):
    model = many_classes(store_dir, "process")
    assert model.runner.executor == "process"
    limits.configure(max_table_cells=10_000)
    direct = refused(lambda: model.predict_proba(ROWS))
    assert isinstance(direct, PayloadTooLarge) and "300 rows x 60 columns" in str(direct)
    job = model.start_job("predict_proba", ROWS)
    in_job = refused(lambda: job.result(120))  # it answered 18,000 cells
    assert str(in_job) == str(direct)
    assert job.status == "failed"
    # the worker process serves the next job under that job's ceilings, not the last ones
    limits.configure(limits.Limits())
    answer = model.start_job("predict_proba", ROWS).result(120)
    assert len(answer) == 300 and {len(row) for row in answer} == {60}


def test_a_prediction_job_is_held_to_max_table_cells_as_a_whole(store_dir, restore_limits):
    """A job predicts in chunks of 20,000 rows: each chunk was checked alone, so a job's
    answer could pass the ceiling the same call without a job is held to."""
    model = many_classes(store_dir, "process")
    rows = pd.concat([ROWS] * 100, ignore_index=True)  # 30,000 rows: one chunk fits alone
    limits.configure(max_table_cells=25_000)
    direct = refused(lambda: model.predict(rows))
    job = model.start_job("predict", rows)
    assert str(refused(lambda: job.result(120))) == str(direct)
    table = refused(lambda: model.start_job("predict_table", rows).result(120))
    assert "30,000 rows" in str(table) and "max_table_cells" in str(table)


def test_a_retrain_job_in_a_worker_process_honours_the_parents_training_ceilings(
    store_dir, restore_limits
):
    model = wide_model(store_dir, "process")
    limits.configure(max_categories=5)
    answer = model.retrain(WIDE)
    assert any(
        "20 distinct values" in w and "the 4 most frequent" in w for w in answer["warnings"]
    ), answer["warnings"]
    assert model.pipeline[:-1].transform(WIDE.head()).shape[1] <= 5 + 1  # + the number x
    fitted = model.info()["fitted"]
    limits.configure(max_matrix_cells=100)  # 200 rows x 6 columns
    error = refused(lambda: model.retrain(WIDE))
    assert "max_matrix_cells" in str(error) and "100 cells" in str(error)
    assert model.info()["fitted"] == fitted  # nothing stored


# ------------------------------------------------------------------------- the bug, over REST


class TestTheServersCeilingsReachItsWorkers:
    @pytest.fixture
    def jp_server_config(self, restore_limits, store_dir):  # restored after the server stops
        return {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {
                "store_dir": str(store_dir),
                "executor": "process",
                "max_table_cells": 10_000,
                "max_categories": 5,
            },
        }

    async def test_a_predict_proba_job_answers_the_same_413(self, jp_fetch, store_dir):
        assert limits.current().max_table_cells == 10_000  # the server's setting, here
        reply = await call(jp_fetch, "mlhandler", "many", method="PUT",
                           params={"_model": "", "class": "DecisionTreeClassifier",
                                   "target_col": "y"})  # fmt: skip
        assert reply.code == 200, reply.text
        train = TRAIN.to_csv(index=False)
        fit = await call(jp_fetch, "mlhandler", "many", method="POST", body=train,
                         headers=CSV, params={"_action": "retrain"})  # fmt: skip
        assert fit.code == 200, fit.text
        body = ROWS.to_csv(index=False)
        direct = await call(jp_fetch, "mlhandler", "many", method="POST", body=body,
                            headers=CSV, params={"_action": "predict_proba"})  # fmt: skip
        error = assert_clean_error(direct, 413, "300 rows", "max_table_cells")["error"]
        started = await call(jp_fetch, "mlhandler", "many", method="POST", body=body,
                             headers=CSV,
                             params={"_action": "predict_proba", "_wait": "false"})  # fmt: skip
        assert started.code == 202, started.text
        job = started.json()["job"]
        deadline = time.monotonic() + 120
        while True:
            state = (await call(jp_fetch, "mlhandler", "many", params={"_job": job})).json()
            if state["status"] not in ("queued", "running") or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert state["status"] == "failed", state  # it was done, with 18,000 cells
        assert state["error"] == error

    async def test_a_retrain_job_groups_categories_by_the_servers_setting(self, jp_fetch):
        reply = await call(jp_fetch, "mlhandler", "wide", method="PUT",
                           params={"_model": "", "class": "LogisticRegression",
                                   "target_col": "y", "cats": "code"})  # fmt: skip
        assert reply.code == 200, reply.text
        fit = await call(jp_fetch, "mlhandler", "wide", method="POST",
                         body=WIDE.to_csv(index=False), headers=CSV,
                         params={"_action": "retrain"})  # fmt: skip
        assert fit.code == 200, fit.text
        assert any("the 4 most frequent" in w for w in fit.json()["warnings"]), fit.json()


class TestAStoppedServerGivesTheProcessItsLimitsBack:
    @pytest.fixture
    def jp_server_config(self, restore_limits, store_dir):
        return {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {"store_dir": str(store_dir), "max_table_cells": 1_000},
        }

    async def test_a_widget_after_the_server_reads_a_large_table(self, jp_serverapp):
        # a kernel (or test process) that ran a server goes on under its own ceilings: a
        # 2,000 x 13 upload in the next widget was refused by the stopped server's 1,000 cells
        (app,) = jp_serverapp.extension_manager.extension_apps["mlwidget_server"]
        assert limits.current().max_table_cells == 1_000  # the server's, while it runs
        await app.stop_extension()
        assert limits.current() == app.limits_before == limits.Limits()  # the process's own
        table = pd.DataFrame({f"x{i}": range(2_000) for i in range(13)})
        assert read_table(table.to_csv(index=False).encode()).shape == (2_000, 13)


# ------------------------------------------------------------------------- Dask


def test_a_dask_worker_gets_the_jobs_ceilings(store_dir, restore_limits):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        model = many_classes(store_dir, "dask", dask_scheduler=address)
        assert model.runner.executor == "dask"
        limits.configure(max_table_cells=10_000)
        direct = refused(lambda: model.predict_proba(ROWS))
        in_job = refused(lambda: model.start_job("predict_proba", ROWS).result(120))
        assert str(in_job) == str(direct)  # a partition task (DaskExecutor._partitions)
        wide = wide_model(store_dir, "dask", dask_scheduler=address)
        limits.configure(limits.Limits(max_matrix_cells=100))
        error = refused(lambda: wide.retrain(WIDE))  # a whole task (DaskExecutor.run)
        assert "max_matrix_cells" in str(error) and "100 cells" in str(error)
        limits.configure(limits.Limits())
        assert len(model.start_job("predict_proba", ROWS).result(120)) == 300
        assert wide.retrain(WIDE)["warnings"] == []  # 20 categories: under the default 100


# ------------------------------------------------------------------------- the Limits object


def test_the_defaults_are_the_servers_defaults():
    from mlwidget_server.app import MLWidgetApp

    defaults = limits.Limits()
    assert defaults.max_table_cells == 50_000_000 and defaults.max_categories == 100
    assert (defaults.cv_folds, defaults.cv_max_rows, defaults.cv_seconds) == (5, 100_000, 20)
    app = MLWidgetApp()  # ($MLWIDGET_CV_FOLDS is unset in this module's tests)
    assert all(app.has_trait(name) for name in limits.FIELDS)  # every ceiling is a setting
    for name in limits.FIELDS:
        assert getattr(app, name) == getattr(defaults, name), name


# ------------------------------------------------------------------------- $MLWIDGET_CV_FOLDS


def process_default_folds(value: str) -> subprocess.CompletedProcess:
    """A new process's ``limits.current().cv_folds`` with ``$MLWIDGET_CV_FOLDS=value``."""
    code = "from mlwidget import limits; print(limits.current().cv_folds)"
    env = {**os.environ, limits.ENV_CV_FOLDS: value}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_environment_sets_a_processs_folds_and_a_bad_value_warns():
    assert process_default_folds("3").stdout.split() == ["3"]
    assert process_default_folds("0").stdout.split() == ["0"]
    bad = process_default_folds("1")
    assert bad.returncode == 0 and bad.stdout.split() == ["5"]  # importing mlwidget works
    assert "Expected $MLWIDGET_CV_FOLDS to be 0 (no cross-validation)" in bad.stderr
    assert "got '1'" in bad.stderr and "Using cv_folds=5" in bad.stderr


@pytest.mark.parametrize("value", ["1", "-2", "five", "٣", "2.0", "9" * 50])
def test_from_environment_refuses_what_is_not_a_number_of_folds(value, monkeypatch):
    monkeypatch.setenv(limits.ENV_CV_FOLDS, value)
    with pytest.raises(BadRequest) as caught:
        limits.from_environment()
    assert "$MLWIDGET_CV_FOLDS" in str(caught.value) and repr(value) in str(caught.value)


def test_the_server_setting_defaults_to_the_environment(monkeypatch):
    from mlwidget_server.app import MLWidgetApp

    monkeypatch.setenv(limits.ENV_CV_FOLDS, "0")
    assert MLWidgetApp().cv_folds == 0
    monkeypatch.setenv(limits.ENV_CV_FOLDS, "nine")
    assert MLWidgetApp().cv_folds == 5  # with a warning in the server's log


class TestTheServersFolds:
    @pytest.fixture
    def jp_server_config(self, restore_limits, store_dir):
        return {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {"store_dir": str(store_dir), "executor": "thread", "cv_folds": 3},
        }

    async def test_a_retrain_is_cross_validated_with_the_servers_folds(self, jp_fetch):
        reply = await call(jp_fetch, "mlhandler", "wide", method="PUT",
                           params={"_model": "", "class": "LogisticRegression",
                                   "target_col": "y"})  # fmt: skip
        assert reply.code == 200, reply.text
        fit = await call(jp_fetch, "mlhandler", "wide", method="POST",
                         body=WIDE.to_csv(index=False), headers=CSV,
                         params={"_action": "retrain"})  # fmt: skip
        assert fit.code == 200, fit.text
        assert fit.json()["cv_score"]["on"] == "3-fold cv", fit.json()


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"max_table_cells": 0}, ["max_table_cells", "positive integer", "got 0"]),
        ({"max_categories": True}, ["max_categories", "positive integer", "got True"]),
        ({"max_matrix_cells": 2.5}, ["max_matrix_cells", "positive integer", "2.5"]),
        ({"max_body_size": "10"}, ["max_body_size", "positive integer", "'10'"]),
        ({"cv_max_rows": None}, ["cv_max_rows", "positive integer", "None"]),
        ({"cv_folds": 1}, ["cv_folds", "at least 2", "got 1"]),
        ({"cv_seconds": -1}, ["cv_seconds", "positive number", "-1"]),
        ({"cv_seconds": math.inf}, ["cv_seconds", "positive number", "inf"]),
        ({"max_cells": 10}, ["unknown limit 'max_cells'", "max_table_cells"]),
        ({"MAX_ROWS": 10}, ["unknown limit 'MAX_ROWS'", "cv_max_rows"]),
    ],
)
def test_bad_limits_are_refused_naming_the_setting(values, words, restore_limits):
    before = limits.current()
    attempts = {
        "Limits()": lambda: limits.Limits(**values),
        "replace": lambda: before.replace(**values),
        "configure": lambda: limits.configure(**values),
        "configure(mapping)": lambda: limits.configure(values),
        "using": lambda: limits.using(values).__enter__(),
    }
    for label, attempt in attempts.items():
        with pytest.raises(BadRequest) as caught:
            attempt()
        assert caught.value.status == 400
        for word in words:
            assert word.lower() in str(caught.value).lower(), (label, word, str(caught.value))
    assert limits.current() == before  # nothing changed


def test_limits_are_frozen_values():
    one = limits.Limits(max_categories=7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.max_categories = 8  # type: ignore[misc]
    assert one == limits.Limits(max_categories=7) and hash(one) == hash(
        limits.Limits(**one.as_dict())
    )
    assert one.replace(max_table_cells=5) == limits.Limits(max_categories=7, max_table_cells=5)
    assert limits.Limits(cv_folds=0).cv_folds == 0  # no cross-validation
    assert limits.Limits(cv_seconds=0.5).cv_seconds == 0.5


def test_configure_replaces_the_process_default(restore_limits):
    assert limits.configure(max_categories=50) == limits.Limits(max_categories=50)
    assert limits.configure(max_table_cells=10) == limits.Limits(
        max_categories=50, max_table_cells=10
    )
    assert limits.configure(limits.Limits()) == limits.current() == limits.Limits()
    # one name for each ceiling: the old module globals' spellings are refused
    with pytest.raises(BadRequest, match="Unknown limit 'MAX_CATEGORIES'"):
        limits.configure(MAX_CATEGORIES=40)
    with limits.using(limits.Limits(max_matrix_cells=5)):
        assert limits.current().max_matrix_cells == 5
        assert limits.current().max_table_cells == 50_000_000


def test_using_is_undone_and_stays_in_its_thread(restore_limits):
    default = limits.configure(max_categories=9)
    seen: dict[str, limits.Limits] = {}
    inside, release = threading.Event(), threading.Event()

    def job() -> None:
        with limits.using(limits.Limits(max_categories=3)):
            seen["job"] = limits.current()
            inside.set()
            release.wait(10)
        seen["after"] = limits.current()

    thread = threading.Thread(target=job)
    thread.start()
    assert inside.wait(10)
    seen["meanwhile"] = limits.current()  # another thread: the process default
    release.set()
    thread.join(10)
    assert seen == {"job": limits.Limits(max_categories=3), "meanwhile": default, "after": default}
    with pytest.raises(ZeroDivisionError), limits.using({"max_table_cells": 4}):
        assert limits.current() == default.replace(max_table_cells=4)  # changes to current()
        1 / 0  # noqa: B018
    assert limits.current() == default
