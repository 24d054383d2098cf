"""Jobs from Python and the widgets: ``retrain(wait=False)`` returns a ``Job`` that runs in a
real worker process, reports real progress, and cancels; the widgets show the same state and
their Cancel button stops the job."""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from conftest import GUIDE_OPTIONS
from rest_helpers import stored

from mlwidget import BadRequest, Conflict, MLModel
from mlwidget.jobs import Job, JobCancelled, Runner, TooManyJobs
from mlwidget.jobs.job import Pause
from mlwidget.widgets import build_app

ENDLESS = {"class": "SGDClassifier", "max_iter": 2_000_000_000, "tol": None}


@pytest.fixture
def titanic(store_dir: Path, titanic_csv: Path) -> MLModel:
    return MLModel("titanic", data=str(titanic_csv), store=store_dir, **GUIDE_OPTIONS)


def job_workers(runner: Runner) -> list[psutil.Process]:
    return [psutil.Process(pid) for pid in runner.worker_pids()]


def wait_until(check, within: float = 30.0) -> None:
    """Wait for ``check()`` to hold (a bound, not a measurement)."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


Report = tuple[str, "float | None", "float | None", float]


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Report]]:
    """Every progress report each job of this process receives, in order, by job id: the
    stage, the fraction reported, and the job's ``progress`` and ``overall`` right after it
    (what anyone reading the job then saw). Every one of them, not the few a poller catches."""
    seen: dict[str, list[Report]] = collections.defaultdict(list)
    real = Job.report

    def report(self: Job, stage: str, progress: float | None = None) -> None:
        real(self, stage, progress)
        seen[self.id].append((stage, progress, self.progress, self.overall))

    monkeypatch.setattr(Job, "report", report)
    return seen


@pytest.mark.cross_validates
def test_a_job_in_a_worker_process_gives_the_same_model_as_a_thread(
    titanic: MLModel, reports: dict[str, list[Report]]
) -> None:
    assert titanic.runner.executor == "process"  # the default, in a kernel too
    titanic.configure(class_="RandomForestClassifier", n_estimators=60, random_state=1)
    job = titanic.retrain(wait=False)
    result = job.result(120)
    assert job.status == "done" and job.progress == 1
    assert job.elapsed is not None and job.finished >= job.started >= job.created
    seen = reports[job.id]  # each report the job got from its worker, as the job then stood
    fractions = [p for stage, _, p, _ in seen if stage == "fit" and p is not None]
    assert fractions == sorted(fractions) and any(0 < p < 1 for p in fractions), seen
    overall = [o for *_, o in seen]
    assert overall == sorted(overall) and {"fit", "save"} <= {s for s, *_ in seen}, seen
    # the fit serves as soon as it is stored; its cross-validation is a job that follows
    pending = result["cv_score"]
    assert pending["pending"] and pending["on"] == "5-fold cv", result
    follow = titanic.job(pending["job"])
    cv_score = follow.result(120)
    assert follow.action == "crossval" and "cv" in {s for s, *_ in reports[follow.id]}
    assert cv_score["on"] == "5-fold cv" and 0.5 < cv_score["value"] < 1
    assert titanic.versions()[0]["cv_score"] == cv_score == titanic.info()["fitted"]["cv_score"]
    in_process = titanic.predict_proba(titanic.data())
    threaded = MLModel.open("titanic", store=titanic.store, executor="thread")
    assert threaded.retrain()["score"] == result["score"]
    assert threaded.predict_proba(threaded.data()) == in_process  # the same trees
    # newest first: the thread's retrain, this one, the model's first fit (MLModel(data=...))
    retrains = [j for j in titanic.jobs() if j.action != "crossval"]
    assert [j.action for j in retrains] == ["retrain", "retrain", "retrain"]
    assert retrains[1] is job


def test_cancel_kills_the_worker_and_stores_nothing(titanic: MLModel, store_dir: Path) -> None:
    titanic.configure(ENDLESS)
    before = stored(store_dir)
    job = titanic.retrain(wait=False)
    wait_until(lambda: job.stage == "fit")
    workers = job_workers(titanic.runner)
    assert workers
    with pytest.raises(Conflict, match=job.id):  # a second writer is refused at once
        titanic.append(titanic.data().head(2))
    assert job.cancel()
    with pytest.raises(JobCancelled, match="nothing was stored"):
        job.result(timeout=10)
    assert job.status == "cancelled"
    wait_until(lambda: all(not p.is_running() for p in workers))
    assert stored(store_dir) == before
    assert not job.cancel()  # finished: nothing to cancel


def test_a_worker_writes_the_model_file_and_a_refused_commit_leaves_none(
    titanic: MLModel, store_dir: Path
) -> None:
    """The worker process writes the fitted model in the model's staging folder and the commit
    moves it in; when the commit is refused (another process changed the model meanwhile),
    the staged file is removed: the store holds what the other process committed, no more."""
    staging = store_dir / "titanic" / ".jobs"
    titanic.configure(class_="RandomForestClassifier", n_estimators=20, random_state=0)
    titanic.retrain()
    assert staging.is_dir() and not list(staging.iterdir())  # moved in at the commit
    assert titanic.info()["model"] == "RandomForestClassifier"
    assert titanic.path.parent == store_dir / "titanic" and titanic.path.is_file()
    assert MLModel.open("titanic", store=store_dir).predict(titanic.data().head(3))

    titanic.configure({"class": "SGDClassifier", "random_state": 0}, cv_folds=0)
    with Pause("fit") as pause:  # the job waits at its first report from the fit
        job = titanic.retrain(wait=False)
        wait_until(pause.reached.is_set, within=60)
        assert pause.job is job
        with titanic.store.lock("titanic"):  # another process's commit, at the store's level
            state, _ = titanic.store.read_state("titanic")
            state["options"]["params"] = {**state["options"]["params"], "alpha": 0.01}
            titanic.store.commit("titanic", state)
        # the store as the other process left it (the worker may be staging its model file
        # in .jobs/ meanwhile: that one must be gone at the end, checked below)
        folder = store_dir / "titanic"
        after = {
            str(f.relative_to(folder)): f.read_bytes()
            for f in sorted(folder.rglob("*"))
            if ".jobs" not in f.relative_to(folder).parts and f.is_file() and f.name != ".lock"
        }
        assert pause.holding and job.status == "running"  # the commit came while it fitted
    with pytest.raises(Conflict, match="changed by another process"):
        job.result(timeout=60)
    assert not list(staging.iterdir())  # the staged model file went with the refused fit
    assert stored(store_dir) == after
    assert titanic.info()["fitted"]["model"] == "RandomForestClassifier"  # still serving


def _thread_pools(payload: dict, report) -> dict[str, int]:
    """A job's work: the native thread pools of the process it runs in, by kind."""
    from threadpoolctl import threadpool_info

    return {p["user_api"]: p["num_threads"] for p in threadpool_info()}


def test_a_worker_runs_blas_on_one_thread_and_openmp_on_its_cpus() -> None:
    """BLAS threads only slowed scikit-learn's tall, narrow problems down (a 100k-row
    LogisticRegression took 3.7 s with two in a worker process, 0.43 s with one); OpenMP
    (histogram gradient boosting) gains from every CPU the worker may use."""
    from mlwidget.estimators import usable_cpus
    from mlwidget.jobs import Job

    runner = Runner("process")
    try:
        job = Job("retrain", "pools", ("test", "pools"), writer=False)
        runner.start(job, lambda: {}, _thread_pools, lambda result, _payload: result)
        pools = job.result(60)
    finally:
        runner.shutdown()
    assert pools["blas"] == 1, pools
    assert pools["openmp"] == usable_cpus(), pools


def test_widgets_show_progress_and_cancel(titanic: MLModel, store_dir: Path) -> None:
    app = build_app(titanic)
    titanic.configure(class_="GradientBoostingClassifier", n_estimators=300, random_state=0)
    app.editor.refresh()
    values: list[int] = []
    app.editor.progress.observe(lambda change: values.append(change["new"]), "value")
    # the job waits at its report of half its boosting stages while the widgets are looked at
    with Pause("fit", when=lambda p: p is not None and 0.5 <= p < 1) as pause:
        app.editor.retrain_button.click()
        assert app.editor.cancel_button.layout.display == ""  # shown while the job runs
        wait_until(pause.reached.is_set, within=120)
        job = pause.job
        assert job is not None and job.status == "running" and job.progress == 0.5
        shown = int(job.overall * 100)
        assert 0 < shown < 100, job.overall
        # real progress, not a jump to the end: the bar and the status line show the job mid-fit
        wait_until(
            lambda: (
                app.editor.progress.value == shown
                and "fit · 50%" in app.editor.status.text
                and app.editor.status.kind == "busy"
            )
        )
        assert pause.holding and app.editor.cancel_button.layout.display == ""
    app.wait(120)
    assert app.editor.status.kind == "ok", app.editor.status.text
    assert values == sorted(values), values  # never backwards
    assert shown in values and values[-1] == 100, values
    assert app.editor.cancel_button.layout.display == "none"

    titanic.configure(ENDLESS)
    app.editor.refresh()
    before = stored(store_dir)
    app.editor.retrain_button.click()
    wait_until(lambda: app.runner.job is not None and app.runner.job.stage == "fit")
    wait_until(lambda: "fit" in app.editor.status.text and " s" in app.editor.status.text)
    app.editor.cancel_button.click()
    app.wait(30)
    assert app.editor.status.kind == "error"
    assert "cancelled" in app.editor.status.text and "nothing was stored" in app.editor.status.text
    assert not app.editor.retrain_button.disabled
    assert stored(store_dir) == before


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_score_and_prediction_jobs_answer_as_the_calls(
    titanic: MLModel, titanic_csv: Path, executor: str
) -> None:
    model = MLModel.open("titanic", store=titanic.store, executor=executor)
    frame = pd.concat([pd.read_csv(titanic_csv)] * 30, ignore_index=True)  # 26,730 rows: 2 chunks
    job = model.start_job("score", frame, metric="roc_auc")
    assert job.result(60) == model.score(frame, metric="roc_auc")
    job = model.start_job("predict_proba", frame)
    assert job.result(60) == model.predict_proba(frame)
    job = model.start_job("predict", frame)
    assert job.result(60) == model.predict(frame) and job.progress == 1
    records = model.start_job("predict_table", frame.head(5)).result(60)
    assert [r["Survived"] for r in records] == model.predict(frame.head(5))
    with pytest.raises(BadRequest, match="needs rows"):
        model.start_job("predict", frame.head(0))
    with pytest.raises(BadRequest, match="job action"):
        model.start_job("explain", frame)


def test_a_worker_killed_by_many_threads_at_once_closes_its_socket_once() -> None:
    """A cancel (the request's thread) and the job's driver both stop a worker. Each closed
    its socket, and the second close of one descriptor failed with EBADF: the page showed
    "The job failed (OSError: [Errno 9] Bad file descriptor)" instead of "was cancelled"
    (found by CI, about one cancel in 30 here with a short switch interval)."""
    import sys
    import threading

    from mlwidget.jobs.pool import Worker

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads change hands often, as on a busy server
    try:
        for _ in range(100):
            w = Worker(None)
            start = threading.Barrier(4)
            errors: list[BaseException] = []

            def stop_it(
                w: Worker = w, start: threading.Barrier = start, errors: list = errors
            ) -> None:
                start.wait()
                try:
                    w.kill()
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=stop_it) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors
            assert not w.alive() and w.conn.closed
    finally:
        sys.setswitchinterval(switch)


def _endless(payload: dict, report) -> None:
    """A job's work that never ends (a fit in C code that reports nothing more)."""
    report("fit", 0.0)
    while True:
        time.sleep(0.01)


@pytest.fixture
def python_sigint():
    """Ctrl-C raises KeyboardInterrupt here, as in a kernel: Python's own SIGINT handler,
    whatever an earlier test of this process left (a Jupyter server installs its own, and
    ``_thread.interrupt_main`` then reaches that one instead)."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _interrupt_main_when(check, within: float = 240.0) -> None:
    """Ctrl-C in the main thread (a kernel's interrupt) once ``check()`` holds, or after
    ``within`` seconds if it never does (the test then fails on what it finds, instead of
    hanging in a call that never returns)."""
    import _thread
    import threading

    def interrupt() -> None:
        try:
            wait_until(check, within)
        finally:
            _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()


def test_ctrl_c_during_a_call_kills_its_worker_process(python_sigint) -> None:
    """``model.retrain()`` interrupted in a kernel: the job ends cancelled and its worker
    process goes with it (it was left fitting, holding its CPU and memory, until the kernel
    exited)."""
    from mlwidget.jobs import Job

    runner = Runner("process", max_workers=1)
    job = Job("retrain", "ctrl-c", ("test", "ctrl-c"), writer=False)
    fitting: list[psutil.Process] = []

    def fits() -> bool:
        if job.stage == "fit":
            fitting.extend(job_workers(runner))  # the one worker: the job's
        return bool(fitting)

    try:
        _interrupt_main_when(fits)
        with pytest.raises(KeyboardInterrupt):
            runner.start(job, lambda: {}, _endless, lambda r, _: r, inline=True)
            time.sleep(30)  # (the interrupt lands here if the call returned)
        assert job.status == "cancelled"
        (worker,) = fitting

        def gone() -> bool:
            try:
                return worker.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        wait_until(gone)
    finally:
        runner.shutdown()


def test_ctrl_c_while_a_call_waits_for_its_turn_cancels_it(python_sigint) -> None:
    """With every worker busy, ``model.retrain()`` waits; Ctrl-C then cancels that call (it
    was recorded as failed with an empty message, and the interrupt was lost)."""
    from mlwidget.jobs import Job
    from mlwidget.jobs.job import board

    runner = Runner("process", max_workers=1)
    busy = Job("retrain", "busy", ("test", "busy"), writer=False)
    waiting = Job("retrain", "waiting", ("test", "waiting"), writer=False)
    try:
        runner.start(busy, lambda: {}, _endless, lambda r, _: r)
        wait_until(lambda: busy.stage == "fit")
        _interrupt_main_when(lambda: board.get(waiting.id) is waiting)  # in start(), waiting
        with pytest.raises(KeyboardInterrupt):
            runner.start(waiting, lambda: {}, _endless, lambda r, _: r, inline=True)
            time.sleep(30)
        assert waiting.status == "cancelled" and "cancelled" in waiting.error
        assert busy.status == "running"
    finally:
        runner.shutdown()


def test_a_waiter_giving_up_does_not_break_the_job() -> None:
    """A caller that stops waiting (an asyncio timeout around the job's future, a request
    closed mid-wait) leaves the job running; it finishes and reports as usual (the future
    was cancelled with it, and ``GET ?_job`` answered 500 from then on)."""
    import asyncio

    from mlwidget.jobs import Job

    runner = Runner("thread")
    job = Job("score", "waiter", ("test", "waiter"), writer=False)
    go_on = threading.Event()  # the job's work ends only once the waiter has given up

    def slow(payload: dict, report) -> dict:
        go_on.wait(30)
        return {"score": 1.0}

    async def impatient() -> None:
        with pytest.raises((asyncio.TimeoutError, TimeoutError)):
            await asyncio.wait_for(asyncio.wrap_future(job.future), 0.05)

    try:
        runner.start(job, lambda: {}, slow, lambda r, _: r)
        asyncio.run(impatient())
        assert not job.done and not job.future.cancelled()  # the job runs on
        go_on.set()
        assert job.result(10) == {"score": 1.0}
        assert job.to_dict()["status"] == "done" and job.to_dict()["result"] == {"score": 1.0}
    finally:
        runner.shutdown()


def test_a_cancel_whose_executor_fails_to_stop_still_cancels(caplog) -> None:
    """A cancel hook that fails (a Dask scheduler gone) is logged; the cancel still holds and
    the job ends cancelled (DELETE ?_job answered 500, and a shutdown stopped there)."""
    from mlwidget.jobs import Job

    job = Job("retrain", "hook", ("test", "hook"), writer=False)
    job.start()
    job.on_cancel(lambda: 1 / 0)
    assert job.cancel()
    assert job.stop.is_set() and not job.begin_commit()
    assert "cancel hook failed: ZeroDivisionError" in caplog.text


@pytest.mark.cross_validates
def test_a_full_queue_never_fails_a_stored_retrain(titanic: MLModel) -> None:
    """A retrain's crossval job follows its commit: with the queue full (one slot, no queue)
    it used to be refused with 429 after the fit was stored, so the retrain reported a failure
    for a model that serves (and 20 configured models failed at a server's start). The
    crossval is a follow-up: it waits for the slot the retrain frees."""
    titanic.runner = Runner("thread", max_workers=1, max_queued=0)
    try:
        answer = titanic.retrain(wait=False).result(120)
        assert answer["version"] == 2 and answer["cv_score"]["pending"], answer
        cv_score = titanic.job(answer["cv_score"]["job"]).result(120)
        assert cv_score["on"] == "5-fold cv"
        assert titanic.versions()[0]["cv_score"] == cv_score
        # a new request is still bounded: one job running, none queued
        with Pause("score") as pause:
            held = titanic.start_job("score", titanic.data())
            wait_until(pause.reached.is_set)
            with pytest.raises(TooManyJobs, match="max_queued=0"):
                titanic.start_job("predict", titanic.data())
        assert held.result(120)["score"] > 0.5
    finally:
        titanic.runner.shutdown()
