"""The ``dask`` executor: a job's work as one task on a Dask cluster (``dask_scheduler``, or
the cluster ``dask_cluster`` makes: see dask_cluster.py); bulk predictions as partitions of rows
spread over the workers, the model sent to each once. The job's driver thread (see runner.py)
polls the task for progress, cancel and timeout; a cancel restarts the worker running the task
(a thread cannot be stopped). A job whose worker leaves the cluster while it runs is sent again
once (the driver still has its payload), then fails naming the worker and why it left.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..errors import MLWidgetError, reason
from . import result_parts, source_work
from . import worker as worker_mod
from .dask_cluster import ClusterSpec, Connection, lost_worker
from .job import POLL, Job, Stop, WorkerDied

log = logging.getLogger("mlwidget.jobs")


# what a bulk job's payload holds of the serving version (the rest is the job's own)
MODEL_KEYS = ("name", "state", "pipeline", "digest")


class WorkerLost(Exception):
    """A task of the job was lost with the worker that held or ran it."""

    def __init__(self, worker: str, cause: str) -> None:
        super().__init__(f"worker {worker} left the cluster: {cause}")
        self.worker, self.cause = worker, cause


class DaskExecutor:
    """Runs jobs' work on a Dask cluster through one client (made again when it closes)."""

    def __init__(
        self,
        scheduler: str | None,
        cluster: ClusterSpec | None = None,
        worker_wait: float = 60.0,
    ) -> None:
        self.connection = Connection(scheduler, cluster, worker_wait)
        self.models = ModelCache()

    @property
    def scheduler(self) -> str | None:
        return self.connection.scheduler

    def client(self) -> Any:
        """A running client (a 503 when the dask extra or the scheduler is missing)."""
        return self.connection.client()

    def run(self, job: Job, work: worker_mod.Work, payload: Any, deadline: float | None) -> Any:
        """``work(payload)`` as a task on the cluster, relaying its progress; bulk predictions
        in partitions. Raises ``Stop`` when the job is cancelled or times out. A worker that
        leaves with the job's task: sent once more, then a ``WorkerDied`` naming it."""
        first: WorkerLost | None = None
        while True:
            try:
                client = self.connection.ready(job)  # (again: the only worker may be gone)
                if work is source_work.predict_source:
                    return self._source_parts(client, job, payload, deadline, retry=bool(first))
                if work is worker_mod.predict and payload["action"] != "score":
                    return self._partitions(client, job, payload, deadline, retry=bool(first))
                return self._task(client, job, work, payload, deadline, retry=bool(first))
            except OSError as exc:  # distributed's CommClosedError too: the scheduler went away
                if isinstance(exc, TimeoutError):  # not a lost connection
                    raise
                raise MLWidgetError(
                    f"Job {job.id} ({job.action} of {job.model!r}) lost its connection to "
                    f"{self.connection.where} ({reason(exc)}); nothing was stored. Try again once "
                    "the scheduler is back: the next job connects again.",
                    status=503,
                ) from None
            except WorkerLost as lost:
                if first is not None:
                    raise WorkerDied(
                        f"The Dask worker {lost.worker} running job {job.id} ({job.action} of "
                        f"{job.model!r}) left the cluster: {lost.cause}. The job had already "
                        f"been sent again once, after worker {first.worker} left the same way; "
                        "nothing was stored. Check the workers' logs (out of memory?), give "
                        "them more memory or the job less data, and try again."
                    ) from None
                log.warning(
                    "mlwidget: job %s lost its Dask worker (%s); sending it again once",
                    job.id,
                    lost,
                )
                first = lost

    def _failed(self, client: Any, job: Job, keys: list[str], deadline: float | None) -> None:
        """After a task or gather raised: a Stop if the job was stopped meanwhile, a
        ``WorkerLost`` if a worker left with its keys, an error naming a lost scheduler; else
        nothing (the caller re-raises)."""
        job.check_stop(deadline)  # cancelled or timed out meanwhile, not a failure
        lost = lost_worker(client, keys)
        if lost is not None:
            raise WorkerLost(*lost) from None
        if client.status != "running":
            raise MLWidgetError(
                f"Job {job.id} ({job.action} of {job.model!r}) lost "
                f"{self.connection.where} while it ran (the client is {client.status}); "
                "nothing was stored. Try again once the scheduler is back: the next job "
                "connects again.",
                status=503,
            ) from None

    def _task(
        self,
        client: Any,
        job: Job,
        work: worker_mod.Work,
        payload: Any,
        deadline: float | None,
        retry: bool,
    ) -> Any:
        # the payload (the table) travels as data, not inside the task graph; one piece under a
        # fresh key (a scattered dict would store each value under its key: "options", ...)
        (shared,) = client.scatter([payload], hash=False)
        future = client.submit(
            worker_mod.dask_task,
            work,
            shared,
            job.id,
            key=f"mlwidget-{job.action}-{job.id}{'-retry' if retry else ''}",
            pure=False,
        )
        stop = StopOnce(client, future)
        job.on_cancel(stop)  # a cancel stops it from the cancelling thread at once
        key = ["mlwidget", job.id]
        try:
            # Wait for the task, then fetch its result once, with no poll's timeout: a result()
            # with one abandons the transfer when it runs out, and the next poll starts it
            # again from nothing. A 100-tree forest on 100,000 rows (107 MB pickled) takes
            # ~0.7 s to gather, so polling with result(timeout=0.2) never got it.
            try:
                while not future.done():
                    try:
                        job.check_stop(deadline)
                    except Stop:  # cancelled (stopped already) or timed out
                        stop()
                        raise
                    with_progress = client.get_metadata(key, None)
                    if with_progress:
                        job.report(with_progress[0], with_progress[1])
                    if not future.done():
                        time.sleep(POLL)
                # (bounded by the job's deadline only: past it, the job has timed out)
                left = None if deadline is None else max(0.0, deadline - time.time()) + POLL
                answer = future.result(timeout=left)
            except Exception:
                self._failed(client, job, [future.key, shared.key], deadline)
                raise
            if isinstance(answer, worker_mod.DaskFailure):
                raise MLWidgetError(answer[1], status=answer[0])
            return answer
        finally:
            try:
                client.set_metadata(key, None)
                shared.release()
                future.release()  # the fitted model need not stay in the cluster's memory
            except Exception:  # the scheduler is gone: nothing to clean up
                pass

    def _partitions(
        self, client: Any, job: Job, payload: dict[str, Any], deadline: float | None, retry: bool
    ) -> Any:
        """Bulk predictions on Dask: the model is sent to every worker once, the rows (only the
        columns the model reads) go in even partitions of at most ``worker.PART_ROWS``, at least
        one per worker thread (one task each, spread over the workers), and each partition's
        answers come back as JSON text, or as a part file beside the job's result when its
        worker sees the store; the server joins them into the result file in the rows' order."""
        shared = self.models.get(client, {key: payload[key] for key in MODEL_KEYS})
        task = {key: v for key, v in payload.items() if key not in MODEL_KEYS and key != "frame"}
        frame = needed(payload["frame"], payload["state"], payload["action"])
        pieces = split(frame, sum(client.nthreads().values()))
        again = "-retry" if retry else ""
        parts = client.scatter(pieces, hash=False)
        futures = client.map(
            worker_mod.predict_part,
            [shared] * len(parts),
            [task] * len(parts),
            parts,
            range(len(parts)),
            key=[f"mlwidget-{job.action}-{job.id}{again}-part-{i}" for i in range(len(parts))],
            pure=False,
        )
        try:
            keys = [shared.key] + [part.key for part in parts]
            fragments = self._gather_parts(client, job, futures, keys, deadline)
        finally:
            try:
                for part in parts:
                    part.release()
            except Exception:  # the scheduler is gone: nothing to clean up
                pass
        kind = worker_mod.RESULT_KINDS[payload["action"]]
        try:
            return result_parts.join(payload["result_path"], kind, fragments)
        except OSError as exc:  # the server's disk, not the cluster (run() reads OSError so)
            raise worker_mod.portable(exc) from None

    def _source_parts(
        self, client: Any, job: Job, payload: dict[str, Any], deadline: float | None, retry: bool
    ) -> Any:
        """A bulk prediction from a source: one task per partition, each reading its rows and
        writing its answers itself; the serving version goes to the workers once (ModelCache)
        and only counts and a few preview rows come back."""
        model = self.models.get(client, payload["model"])
        task = {key: value for key, value in payload.items() if key != "model"}
        again = "-retry" if retry else ""
        indexes = list(range(len(payload["parts"])))
        futures = client.map(
            source_work.predict_source_part,
            [model] * len(indexes),
            [task] * len(indexes),
            indexes,
            key=[f"mlwidget-source-{job.id}{again}-part-{i}" for i in indexes],
            pure=False,
        )
        counts = self._gather_parts(client, job, futures, [model.key], deadline)
        preview: list[Any] = []
        for _, head in counts:
            preview.extend(head[: source_work.PREVIEW_ROWS - len(preview)])
        return source_work.answer(payload, sum(rows for rows, _ in counts), preview)

    def _gather_parts(
        self, client: Any, job: Job, futures: list[Any], keys: list[str], deadline: float | None
    ) -> list[Any]:
        """Wait for a bulk job's partition tasks, reporting the share done; their answers, in
        order. A cancel or timeout cancels them; a failure names a lost worker or scheduler
        (``keys``: the job's other data on the cluster)."""
        job.on_cancel(lambda: client.cancel(futures))
        job.report("predict", 0.0)
        finished = threading.Event()  # set as each task ends: no poll's wait after the last
        for future in futures:
            future.add_done_callback(lambda _: finished.set())
        try:
            while True:
                job.check_stop(deadline)
                finished.clear()
                done = sum(f.done() for f in futures)
                job.report("predict", done / max(1, len(futures)))
                if done == len(futures):
                    break
                finished.wait(POLL)
            return list(client.gather(futures))
        except Stop:
            client.cancel(futures)
            raise
        except Exception:  # a cancel while gathering cancels the futures: not a failure
            self._failed(client, job, keys + [f.key for f in futures], deadline)
            raise

    def close(self) -> None:
        """Close the client, if one was made."""
        self.connection.close()


class StopOnce:
    """Stop a task: cancel it and restart the workers still running it (a thread cannot be
    stopped). Called by the cancel and again by the driver's poll that sees the stop; only the
    first call acts. (Both once restarted the worker: the second restart could hit the worker
    the first one had just started, and a worker was lost under load.)"""

    def __init__(self, client: Any, future: Any) -> None:
        self.client, self.future = client, future
        self.lock = threading.Lock()
        self.called = False

    def __call__(self) -> None:
        with self.lock:
            if self.called:
                return
            self.called = True
        client, future = self.client, self.future
        try:
            running = [worker for worker, keys in client.processing().items() if future.key in keys]
            future.cancel()
            if running:
                client.restart_workers(running)
        except Exception as exc:
            log.warning("mlwidget: could not stop a Dask task: %s", reason(exc))


class ModelCache:
    """The serving versions sent to the cluster: each goes to every worker once (a broadcast
    scatter) and stays there for the jobs after it, under its digest; the oldest goes when
    more than ``KEEP`` are held, and all are sent again to a new client (a scheduler that came
    back has forgotten them)."""

    KEEP = 4

    def __init__(self) -> None:
        self.client: Any = None
        self.futures: dict[str, Any] = {}

    def get(self, client: Any, model: dict[str, Any]) -> Any:
        """The cluster's copy of ``model`` (state, pipeline and its ``digest``)."""
        if client is not self.client:
            self.futures, self.client = {}, client
        digest = model["digest"]
        future = self.futures.pop(digest, None)
        if future is None or future.status != "finished":
            (future,) = client.scatter([model], broadcast=True, hash=False)
        self.futures[digest] = future  # the newest last
        while len(self.futures) > self.KEEP:
            oldest = next(iter(self.futures))
            self.futures.pop(oldest).release()
        return future


def needed(frame: Any, state: dict[str, Any], action: str) -> Any:
    """The columns of ``frame`` a bulk job's workers need: a prediction reads only the model's
    features (the guide's Titanic body: 12.4 of 27.3 MB pickled); ``predict_table`` echoes
    every column. The whole frame when a feature is missing (the worker's error names it)."""
    names = [str(f["name"]) for f in state.get("schema") or []]
    if action == "predict_table" or not names or not frame.columns.is_unique:
        return frame
    if any(name not in frame.columns for name in names):
        return frame
    return frame[names]


def split(frame: Any, slots: int) -> list[Any]:
    """``frame`` in even partitions of at most ``worker.PART_ROWS`` rows, at least ``slots``
    (the cluster's worker threads, so that all of them work) when it has that many rows."""
    rows = len(frame)
    count = max(1, min(rows, max(slots, -(-rows // worker_mod.PART_ROWS))))
    bounds = [rows * i // count for i in range(count + 1)]
    return [frame.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
