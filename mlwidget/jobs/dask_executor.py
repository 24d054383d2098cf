"""The ``dask`` executor: a job's work as one task on a ``distributed.Client`` connected to
``dask_scheduler``; bulk predictions as partitions of rows spread over the workers, the model
sent to each once. The job's driver thread (see runner.py) polls the task for progress, cancel
and timeout; a cancel restarts the worker running the task (a thread cannot be stopped).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..errors import MLWidgetError, reason
from . import worker as worker_mod
from .job import POLL, Job, Stop

log = logging.getLogger("mlwidget.jobs")


class DaskExecutor:
    """Runs jobs' work on a Dask cluster through one client, made on first use."""

    def __init__(self, scheduler: str | None) -> None:
        self.scheduler = scheduler
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        """The client, connected on first use (a 503 when the dask extra or the scheduler is
        missing)."""
        with self._lock:
            if self._client is None:
                try:
                    from distributed import Client
                except ImportError:
                    raise MLWidgetError(
                        "executor='dask' needs the dask extra: pip install 'mlwidget[dask]'.",
                        status=503,
                    ) from None
                try:
                    self._client = Client(self.scheduler, timeout="10s", set_as_default=False)
                except Exception as exc:
                    log.error("mlwidget: no Dask scheduler at %s: %s", self.scheduler, exc)
                    raise MLWidgetError(
                        "The Dask scheduler (dask_scheduler) could not be reached; the log has "
                        f"details ({type(exc).__name__}).",
                        status=503,
                    ) from None
            return self._client

    def run(self, job: Job, work: worker_mod.Work, payload: Any, deadline: float | None) -> Any:
        """``work(payload)`` as a task on the cluster, relaying its progress; bulk predictions
        in partitions. Raises ``Stop`` when the job is cancelled or times out."""
        client = self.client()
        if work is worker_mod.predict and payload["action"] != "score":
            return self._partitions(client, job, payload, deadline)
        # the payload (the table) travels as data, not inside the task graph; one piece under a
        # fresh key (a scattered dict would store each value under its key: "options", ...)
        (shared,) = client.scatter([payload], hash=False)
        future = client.submit(
            worker_mod.dask_task,
            work,
            shared,
            job.id,
            key=f"mlwidget-{job.action}-{job.id}",
            pure=False,
        )
        job.on_cancel(lambda: self._stop(client, future))
        key = ["mlwidget", job.id]
        try:
            # Wait for the task, then fetch its result once, with no poll's timeout: a result()
            # with one abandons the transfer when it runs out, and the next poll starts it
            # again from nothing. A 100-tree forest on 100,000 rows (107 MB pickled) takes
            # ~0.7 s to gather, so polling with result(timeout=0.2) never got it.
            while not future.done():
                try:
                    job.check_stop(deadline)
                except Stop:
                    self._stop(client, future)
                    raise
                with_progress = client.get_metadata(key, None)
                if with_progress:
                    job.report(with_progress[0], with_progress[1])
                if not future.done():
                    time.sleep(POLL)
            # (bounded by the job's deadline only: past it, the job has timed out)
            left = None if deadline is None else max(0.0, deadline - time.time()) + POLL
            try:
                answer = future.result(timeout=left)
            except Exception:
                job.check_stop(deadline)  # cancelled or timed out meanwhile, not a failure
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
        self, client: Any, job: Job, payload: dict[str, Any], deadline: float | None
    ) -> Any:
        """Bulk predictions on Dask: the model is sent to every worker once, the rows go in
        partitions of ``worker.PART_ROWS`` (one task each, spread over the workers), and the
        answers are gathered back in the rows' order."""
        frame = payload["frame"]
        model = {key: value for key, value in payload.items() if key != "frame"}
        (shared,) = client.scatter([model], broadcast=True, hash=False)
        size = worker_mod.PART_ROWS
        parts = client.scatter([frame.iloc[i : i + size] for i in range(0, len(frame), size)])
        futures = client.map(
            worker_mod.predict_part,
            [shared] * len(parts),
            parts,
            key=[f"mlwidget-{job.action}-{job.id}-part-{i}" for i in range(len(parts))],
            pure=False,
        )
        job.on_cancel(lambda: client.cancel(futures))
        job.report("predict", 0.0)
        try:
            while True:
                job.check_stop(deadline)
                done = sum(f.done() for f in futures)
                job.report("predict", done / max(1, len(futures)))
                if done == len(futures):
                    break
                time.sleep(POLL)
            answers = client.gather(futures)
        except Stop:
            client.cancel(futures)
            raise
        except Exception:  # a cancel while gathering cancels the futures: not a failure
            job.check_stop(deadline)
            raise
        finally:
            shared.release()
            for part in parts:
                part.release()
        if payload["action"] == "predict_table":
            return [row for part in answers for row in part]
        return [value for part in answers for value in part]

    @staticmethod
    def _stop(client: Any, future: Any) -> None:
        """Cancel the task; restart the workers still running it (a thread cannot be stopped)."""
        try:
            running = [worker for worker, keys in client.processing().items() if future.key in keys]
            future.cancel()
            if running:
                client.restart_workers(running)
        except Exception as exc:
            log.warning("mlwidget: could not stop a Dask task: %s", reason(exc))

    def close(self) -> None:
        """Close the client, if one was made."""
        if self._client is not None:
            try:
                self._client.close(timeout=2)
            except Exception:
                pass
