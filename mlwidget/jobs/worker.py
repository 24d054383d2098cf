"""What runs where the work runs: the work functions, and the loop of a worker process.

Work functions take ``(payload, report)`` and return a picklable result: ``fit`` runs the pure
``training.fit`` on the payload's options and table. They run the same in a thread, in a worker
process (``main``) and on a Dask worker (``dask_task``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import MLWidgetError, reason

Work = Callable[[Any, Callable[..., None]], Any]


def fit(payload: dict[str, Any], report: Callable[..., None]) -> Any:
    """``training.fit`` under the ceilings the job was started with (``payload["limits"]``:
    a worker process or a Dask worker has its own defaults, and serves many jobs)."""
    from .. import datasets, limits, training
    from .dask_fit import fit_on_dask

    fitted = fit_on_dask(payload, report)  # on a Dask worker: over the whole cluster, or None
    if fitted is None:
        with limits.using(payload.get("limits")) as ceilings:
            # a source's rows are read here, where the work runs, not where the job started
            table = datasets.materialize(payload["table"])
            fitted = training.fit(
                payload["options"],
                table,
                payload["allowed_classes"],
                metric=payload["metric"],
                progress=report,
                known_hash=payload.get("data_hash"),
                limits=ceilings,
            )
        if isinstance(payload["table"], datasets.Dataset):  # what the commit records of it
            fitted = fitted.of_table(table)
    return staged(fitted, payload)


def staged(fitted: Any, payload: dict[str, Any]) -> Any:
    """``fitted``, its model file written into the store's staging folder ``payload["stage"]``
    when this process sees it (a worker process beside the store; a Dask worker that finds
    the store's id there), to be moved in at the commit: the pipeline (a 100-tree forest: over
    100 MB) is then not pickled back, unpickled by the server and pickled again to disk."""
    stage = payload.get("stage")
    if stage and payload.get("store_id"):  # a Dask worker: only if it sees the same store
        from ..store import sees_store

        stage = stage if sees_store(stage, payload["store_id"]) else None
    if not stage:
        return fitted
    import dataclasses

    from ..store import atomic_write, dump_model

    path = Path(stage) / f"model-{time.time_ns():x}-{os.getpid()}.joblib"
    atomic_write(path, lambda tmp: dump_model(fitted.pipeline, tmp))
    return dataclasses.replace(fitted, pipeline=None, staged=str(path))


def crossval(payload: dict[str, Any], report: Callable[..., None]) -> Any:
    """``training.cross_validate`` of a committed fit (``payload["folds"]`` folds of the same
    options and table), under the ceilings the job was started with:
    ``(cv_score, out_of_fold, warnings)``."""
    from .. import datasets, limits, training

    with limits.using(payload.get("limits")) as ceilings:
        return training.cross_validate(
            payload["options"],
            datasets.materialize(payload["table"]),
            payload["allowed_classes"],
            payload["folds"],
            progress=report,
            limits=ceilings,
            fingerprint=payload.get("data_hash"),
        )


NICE = 10  # how much lower a worker process's CPU priority is than its server's
MEMORY_EXIT = 75  # a worker's exit code when job_memory stopped it outside its work
CHUNK_ROWS = 20_000  # rows a prediction job predicts between progress reports


def predict(payload: dict[str, Any], report: Callable[..., None], writer: Any = None) -> Any:
    """Predictions or a score of ``payload["frame"]`` by ``payload["pipeline"]`` (the serving
    model, with its ``state``), in chunks of rows with progress. The same answers as
    ``MLModel.predict`` / ``predict_proba`` / ``score``; ``predict_table`` gives records.
    With a ``result_path``, the answer is written there chunk by chunk and a
    ``results.StoredResult`` returned: the rows never travel back whole (with a ``writer``,
    into it: a Dask partition's ``result_parts.FragmentWriter``). Runs under the ceilings the
    job was started with (``payload["limits"]``), as ``fit`` does."""
    from .. import limits

    with limits.using(payload.get("limits")):
        return _predict(payload, report, writer)


def _predict(payload: dict[str, Any], report: Callable[..., None], given: Any = None) -> Any:
    from .. import predicting
    from ..snapshot import Snapshot
    from .results import ResultWriter

    name, action, frame = payload["name"], payload["action"], payload["frame"]
    snap = Snapshot.detached(name, payload["state"], payload["pipeline"])
    if action == "score":
        report("score", None)
        return predicting.score(snap, name, frame, payload["metric"])
    # the whole answer is held to the ceiling, as the call without a job holds it, not each
    # chunk (or Dask partition) alone
    beside = len(frame.columns) if action == "predict_table" else 0
    predicting.check_total(snap, action, payload.get("rows") or len(frame), beside)
    path = payload.get("result_path")
    parts: list[Any] = []
    total = len(frame)
    report("predict", 0.0)
    with contextlib.ExitStack() as stack:
        writer = given
        if writer is None and path:
            writer = ResultWriter(path, RESULT_KINDS[action])
        if writer is not None:
            stack.enter_context(writer)
        for start in range(0, total, CHUNK_ROWS):
            chunk = frame.iloc[start : start + CHUNK_ROWS].reset_index(drop=True)
            answers = _predict_chunk(snap, name, action, chunk)
            if writer is not None:
                writer.add(answers)
            else:
                parts.extend(answers)
            report("predict", min(1.0, (start + CHUNK_ROWS) / total))
        return writer.close() if writer is not None else parts


RESULT_KINDS = {
    "predict": "predictions",
    "predict_proba": "probabilities",
    "predict_table": "records",
}


def _predict_chunk(snap: Any, name: str, action: str, chunk: Any) -> list[Any]:
    from .. import predicting
    from ..jsonable import to_jsonable

    if action == "predict_proba":
        return predicting.predict_proba(snap, name, chunk, None)
    if action == "predict_table":
        table = predicting.predict_table(snap, name, chunk, None)
        return to_jsonable(table.to_dict(orient="records"))
    return predicting.predict(snap, name, chunk, None)


PART_ROWS = 50_000  # rows in one partition of a bulk prediction on Dask, at most


def predict_part(model: dict[str, Any], job: dict[str, Any], part: Any, index: int = 0) -> Any:
    """Partition ``index`` of a bulk prediction on a Dask worker (see ``DaskExecutor`` in
    dask_executor.py): ``model`` is the serving version the worker keeps for every job of it,
    ``job`` this job's action, ceilings and result file. Its answers become JSON text here
    (a ``result_parts.Fragment``), written beside the job's result file when this worker sees
    the store (``job["store_id"]`` at its folder), else sent back as bytes; the server joins
    the fragments in order. Never a Python list: Dask sends a list of 50,000 answers element
    by element (2.2 s), and the server would encode them again."""
    from ..store import sees_store
    from .result_parts import FragmentWriter, part_path

    path, store_id = job.get("result_path"), job.get("store_id")
    target = None
    if path and store_id and sees_store(str(Path(path).parent), store_id):
        target = part_path(path, index)
    kind = RESULT_KINDS[job["action"]]
    part_payload = {**model, **job, "frame": part.reset_index(drop=True), "result_path": None}
    try:
        return predict(part_payload, lambda *_: None, FragmentWriter(target, kind))
    except OSError:
        if target is None:
            raise
        # the store is seen but cannot be written from here (permissions, a full disk): the
        # text goes back instead (an OSError would read as a lost scheduler to the driver)
        return predict(part_payload, lambda *_: None, FragmentWriter(None, kind))


def portable(exc: BaseException) -> MLWidgetError:
    """An error that pickles and means the same to the user on the other side."""
    if isinstance(exc, MLWidgetError):
        return exc
    if isinstance(exc, MemoryError):
        return out_of_memory()
    return MLWidgetError(f"The job failed ({type(exc).__name__}: {reason(exc)}).", status=422)


def out_of_memory(where: str = "") -> MLWidgetError:
    """The 413 of a job that needed more memory than ``job_memory`` lets its worker use."""
    from ..errors import PayloadTooLarge

    return PayloadTooLarge(
        f"The job needed more memory than its worker may use{where} (MLWidgetApp.job_memory). "
        "Use less data or smaller parameters, or raise job_memory. Nothing was stored."
    )


# ------------------------------------------------------------------------- worker process


def _watch_parent(parent: int) -> None:
    """End this worker when the process that started it is gone (even by SIGKILL), so no fit
    keeps burning CPU for a server that no longer exists."""
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.5)


class _Threadpools:
    """The native thread pools of this process, held per job: OpenMP (histogram gradient
    boosting, k-means) to the CPUs the worker may use, BLAS to one thread. scikit-learn's BLAS
    calls are on tall, narrow matrices, where more threads only add waiting: a 100k-row
    LogisticRegression fits in 0.43 s with one BLAS thread and 0.76 s with two, and in a
    worker process (below the server's priority) two took 3.7 s; an MLP 4.9 against 5.5 s.
    ``threadpoolctl`` finds the pools by scanning the loaded libraries (about 2.5 ms a scan):
    done again only when a job has imported more modules, not once per job."""

    def __init__(self) -> None:
        self._controller: Any = None
        self._modules = -1

    def limit(self, threads: int) -> Any:
        import sys

        from threadpoolctl import ThreadpoolController

        if len(sys.modules) != self._modules:
            self._controller = ThreadpoolController()
            self._modules = len(sys.modules)
        return self._controller.limit(limits={"blas": 1, "openmp": threads})


def main(conn: Any, memory_limit: int | None, parent: int) -> None:
    """A worker process: run ``(work, payload)`` tasks from ``conn`` one at a time, sending
    ``("progress", stage, fraction)`` while they run and ``("done", result)`` or
    ``("error", exc)`` at the end. Ends when the pipe closes or the parent dies."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which stops us
    # Below the server's priority: on a busy machine, requests win the CPU over fits.
    with contextlib.suppress(OSError, AttributeError):
        os.nice(NICE)
    if memory_limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    from .. import training  # noqa: F401 -- imported before the first task arrives
    from ..estimators import usable_cpus

    pools = _Threadpools()
    try:
        conn.send(("ready",))
    except (EOFError, OSError):
        return
    while True:
        try:
            work, payload = conn.recv()
        except (EOFError, OSError):
            return
        except MemoryError:  # the job's data is larger than job_memory lets this process hold
            os._exit(MEMORY_EXIT)  # (the rest of it is still in the socket: this worker ends)

        def report(stage: str, fraction: float | None = None) -> None:
            conn.send(("progress", stage, fraction))

        try:
            with pools.limit(usable_cpus()):
                result = work(payload, report)
        except BaseException as exc:  # everything goes back to the parent as a clear error
            message: tuple = ("error", portable(exc))
        else:
            message = ("done", result)
        del payload
        try:
            conn.send(message)
        except (EOFError, OSError):
            return
        except MemoryError:
            os._exit(MEMORY_EXIT)
        except Exception as exc:  # the result does not pickle
            conn.send(
                ("error", MLWidgetError(f"The job's result could not be sent back: {reason(exc)}"))
            )


# ------------------------------------------------------------------------- Dask


class DaskFailure(tuple):
    """What ``dask_task`` returns instead of raising: ``(status, message)`` of the error.
    An exception would travel with its traceback, whose frames do not always pickle."""


def dask_task(work: Work, payload: Any, job_id: str) -> Any:
    """A job on a Dask worker: progress goes to the scheduler's metadata, and estimators asked
    to run in parallel (``n_jobs`` other than None or 1) spread over the cluster through
    joblib's dask backend (which takes the job's thread out of the worker's pool while it
    waits, so the tasks it starts may run on the job's own worker too)."""
    import joblib
    from distributed import get_client

    client = get_client()

    def report(stage: str, fraction: float | None = None) -> None:
        client.set_metadata(["mlwidget", job_id], [stage, fraction])

    params = (
        ((payload.get("options") or {}).get("params") or {}) if isinstance(payload, dict) else {}
    )
    parallel = any(k.endswith("n_jobs") and v not in (None, 1) for k, v in params.items())
    try:
        if not parallel:  # joblib's dask backend would ship every tree's data to the cluster
            return work(payload, report)
        with joblib.parallel_config(backend="dask"):
            return work(payload, report)
    except BaseException as exc:
        error = portable(exc)
        return DaskFailure((error.status, str(error)))


def run_main(argv: list[str]) -> None:
    """The worker process's entry point: ``FD MEMORY_LIMIT PARENT_PID`` (see runner.py)."""
    from multiprocessing.connection import Connection

    fd, limit, parent_pid = (int(arg) for arg in argv[:3])
    main(Connection(fd), limit or None, parent_pid)
