"""``Runner``: where jobs run, and their bounds.

A job is driven by a thread of this process (its "driver"): it prepares the payload (stage
``load``), hands the work to the executor, relays progress, and commits the result (stage
``save``) here, once, under the model's lock. The executor decides where the work itself runs:

- ``process``: a pool of worker processes (started on demand, ``spawn``ed, reused). A cancelled
  or timed-out job's worker is killed (SIGKILL) and replaced; a worker that dies fails its job,
  never the server. ``job_memory`` caps a worker's address space.
- ``thread``: in the driver thread. Cancel and timeout take effect at the next progress report
  (between a forest's chunks of trees, or boosting stages); other estimators finish first and
  their result is discarded. Synchronous calls run in the caller's own thread.
- ``dask``: a ``distributed.Client`` on ``dask_scheduler`` (or the cluster ``dask_cluster``
  makes), connected again after the scheduler comes back; a job waits up to
  ``dask_worker_wait`` seconds for a worker, is sent again once if its worker dies, and a cancel
  restarts the worker running it (see dask_executor.py and dask_cluster.py).

At most ``max_workers`` jobs run at once, and at most ``max_queued`` more wait; past that a new
job is refused with 429.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import MLWidgetError
from . import worker as worker_mod
from .dask_cluster import DASK_WORKER_WAIT, ClusterSpec, worker_wait
from .dask_executor import DaskExecutor
from .job import POLL, Job, JobCancelled, JobTimeout, Stop, TooManyJobs, WorkerDied, board
from .pool import Pool, Worker
from .results import StoredResult

EXECUTORS = ("process", "thread", "dask")
ENV_EXECUTOR = "MLWIDGET_EXECUTOR"
ENV_SCHEDULER = "MLWIDGET_DASK_SCHEDULER"
ENV_CLUSTER = "MLWIDGET_DASK_CLUSTER"

log = logging.getLogger("mlwidget.jobs")


class Runner:
    """Runs jobs on one executor, within bounds."""

    def __init__(
        self,
        executor: str = "process",
        max_workers: int = 2,
        job_timeout: float | None = None,
        max_queued: int = 16,
        job_memory: int | None = None,
        dask_scheduler: str | None = None,
        dask_cluster: ClusterSpec | None = None,
        dask_worker_wait: float = DASK_WORKER_WAIT,
    ) -> None:
        if executor not in EXECUTORS:
            raise ValueError(
                f"Expected executor to be one of {', '.join(EXECUTORS)}, got {executor!r}."
            )
        if executor == "dask" and not (dask_scheduler or dask_cluster):
            raise ValueError(
                f"executor='dask' needs dask_scheduler='tcp://host:port' (or ${ENV_SCHEDULER}), "
                f"or dask_cluster='package.module:callable' (or ${ENV_CLUSTER})."
            )
        self.executor = executor
        self.max_workers = max(1, int(max_workers))
        self.job_timeout = job_timeout or None
        self.max_queued = max(0, int(max_queued))
        self.dask_scheduler = dask_scheduler
        self._slots = threading.BoundedSemaphore(self.max_workers)
        self._pool = Pool(job_memory) if executor == "process" else None
        self._dask = (
            DaskExecutor(dask_scheduler, dask_cluster, dask_worker_wait)
            if executor == "dask"
            else None
        )
        self._lock = threading.Lock()
        self._jobs: set[Job] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"<Runner {self.executor} max_workers={self.max_workers}>"

    # ------------------------------------------------------------------ submitting

    def start(
        self,
        job: Job,
        prepare: Callable[[], Any] | None,
        work: worker_mod.Work | None,
        commit: Callable[[Any, Any], Any],
        inline: bool = False,
        follow_up: bool = False,
    ) -> Job:
        """Run ``job``: ``prepare()`` -> payload (here), ``work(payload, report)`` -> result
        (on the executor; None: no work there), ``commit(result, payload)`` -> the job's result
        (here). ``inline`` drives it in the calling thread (and returns when it is over).
        ``follow_up``: the job finishes one already accepted (a retrain's crossval), so a full
        queue does not refuse it (it still counts for the jobs that come after)."""
        with self._lock:
            if self._closed:
                raise JobCancelled("The server is shutting down; the job was not started.")
            waiting = sum(1 for j in self._jobs if not j.done)
            if waiting >= self.max_workers + self.max_queued and not follow_up:
                raise TooManyJobs(
                    f"{waiting} jobs are running or queued, the most this server takes "
                    f"(MLWidgetApp.max_workers={self.max_workers} running + max_queued="
                    f"{self.max_queued} waiting). Try again when one has finished."
                )
            board.add(job)  # a second writer of the same model: 409 naming the running job
            self._jobs.add(job)
        if inline:
            self._drive(job, prepare, work, commit, wait_slot=True)
        else:
            # the job commits in the context it was started from (access.ACTING: who asked)
            thread = threading.Thread(
                target=contextvars.copy_context().run,
                args=(self._drive, job, prepare, work, commit),
                name=f"mlwidget-job-{job.id}",
                daemon=True,
            )
            thread.start()
        return job

    def active(self) -> list[Job]:
        """The jobs running or queued here."""
        with self._lock:
            return [j for j in self._jobs if not j.done]

    def _drive(
        self,
        job: Job,
        prepare: Callable[[], Any] | None,
        work: worker_mod.Work | None,
        commit: Callable[[Any, Any], Any],
        wait_slot: bool = True,
    ) -> None:
        try:
            while not self._slots.acquire(timeout=POLL):  # queued until a slot is free
                if job.stop.is_set():
                    job.finish_cancelled()
                    return
        except KeyboardInterrupt:  # Ctrl-C while a call waits for its turn
            job.finish_cancelled()
            raise
        except BaseException as exc:
            job.fail(exc)
            return
        try:
            if not job.start():
                job.finish_cancelled()
                return
            assert job.started is not None  # set by job.start()
            deadline = job.started + self.job_timeout if self.job_timeout else None
            payload = prepare() if prepare is not None else None
            job.check_stop(deadline)
            result = self._execute(job, work, payload, deadline) if work is not None else None
            try:
                job.check_stop(deadline)
                job.report("save")
                if not job.begin_commit():
                    raise Stop
                answer = commit(result, payload)
            except BaseException:  # an answer written to disk for a job that did not end well
                if isinstance(result, StoredResult):
                    result.remove()
                raise
            finally:  # before the job's end is told: what it wrote and did not commit goes
                discard = getattr(result, "discard", None)
                if callable(discard):
                    discard()
        except Stop:
            self._stopped(job)
        except KeyboardInterrupt:
            if job.committing:  # the commit may have happened: say so, not "nothing stored"
                job.fail(
                    MLWidgetError(
                        f"Job {job.id} ({job.action} of {job.model!r}) was interrupted while "
                        "its result was being stored: the model holds either its previous or "
                        "its new fit (model.info() says which)."
                    )
                )
            else:
                job.finish_cancelled()
            raise
        except BaseException as exc:  # every failure is the job's, never the server's
            if not isinstance(exc, MLWidgetError):
                log.exception("mlwidget: job %s failed", job.id)
            job.fail(worker_mod.portable(exc))
        else:
            job.finish(answer)
        finally:
            self._slots.release()
            with self._lock:
                self._jobs.discard(job)

    def _stopped(self, job: Job) -> None:
        if job.stop_reason == "timeout":
            job.fail(
                JobTimeout(
                    f"Job {job.id} ({job.action} of {job.model!r}) ran longer than "
                    f"{self.job_timeout:g} s (job_timeout) and was stopped; nothing was stored. "
                    "Use less data or a faster estimator, or raise the timeout."
                )
            )
        else:
            job.finish_cancelled()

    # ------------------------------------------------------------------ executors

    def _execute(
        self, job: Job, work: worker_mod.Work, payload: Any, deadline: float | None
    ) -> Any:
        if self.executor == "thread":

            def report(stage: str, fraction: float | None = None) -> None:
                job.check_stop(deadline)
                job.report(stage, fraction)

            return work(payload, report)
        if self.executor == "process":
            return self._in_process(job, work, payload, deadline)
        assert self._dask is not None
        return self._dask.run(job, work, payload, deadline)

    def _in_process(
        self, job: Job, work: worker_mod.Work, payload: Any, deadline: float | None
    ) -> Any:
        assert self._pool is not None
        w = self._pool.acquire()
        # A cancel kills the worker while this job holds it, at once (no other way interrupts
        # a fit in C code); this thread then sees the end of its socket, and closes it. Once
        # the worker is back in the pool (another job's), a cancel leaves it alone.
        held, holding = [w], threading.Lock()

        def stop_worker() -> None:
            with holding:
                if held:
                    held[0].stop()

        job.on_cancel(stop_worker)
        try:
            if not w.ready:  # a fresh process importing scikit-learn: not the job's time
                began = time.time()
                while not w.conn.poll(POLL):
                    if job.stop.is_set():
                        raise Stop
                    if not w.alive():
                        raise EOFError
                w.ready = w.conn.recv() == ("ready",)
                job.waited += time.time() - began
            w.conn.send((work, payload))
            while True:
                job.check_stop(deadline)
                if not w.conn.poll(POLL):
                    if not w.alive():
                        raise EOFError
                    continue
                message = w.conn.recv()
                if message[0] == "progress":
                    job.report(message[1], message[2])
                    continue
                with holding:
                    held.clear()
                self._pool.release(w)  # done or failed, the worker is fine for the next job
                if message[0] == "done":
                    return message[1]
                raise message[1]
        except (OSError, EOFError):
            with contextlib.suppress(subprocess.TimeoutExpired):  # its own end, not our kill
                w.process.wait(1)
            self._pool.discard(w)
            job.check_stop(deadline)  # killed on purpose: cancelled or timed out
            raise self._died(job, w) from None
        except BaseException:  # stopped, Ctrl-C, a message that would not unpickle: while
            if held:  # this job holds the worker, it goes (and its fit with it)
                self._pool.discard(w)
            raise

    def _died(self, job: Job, w: Worker) -> MLWidgetError:
        code = w.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        # job_memory stopped it where a MemoryError could not be caught (receiving the job's
        # data, sending its answer), or C code that could not allocate aborted
        aborted = code is not None and -code in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS)
        if code == worker_mod.MEMORY_EXIT or (aborted and w.memory_limit):
            return worker_mod.out_of_memory(f" (its process ended: {how})")
        return WorkerDied(
            f"The worker process running job {job.id} ({job.action} of {job.model!r}) died "
            f"({how}), perhaps out of memory; nothing was stored. Try again, with less data or "
            "smaller parameters."
        )

    # ------------------------------------------------------------------ lifecycle

    def warm(self) -> None:
        """Start a worker process now, so the first job does not wait for one."""
        if self._pool is not None:
            self._pool.warm()

    @property
    def dask(self) -> DaskExecutor | None:
        """The Dask executor (its ``connection``: the client, its status, the dashboard)."""
        return self._dask

    def worker_pids(self) -> list[int]:
        return self._pool.pids() if self._pool is not None else []

    def shutdown(self) -> None:
        """Cancel every job, stop the worker processes, close the Dask client."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        if self._pool is not None:
            self._pool.close()
        if self._dask is not None:
            self._dask.close()


# ----------------------------------------------------------------------------- shared runners

_shared: dict[tuple, Runner] = {}
_shared_lock = threading.Lock()


def resolve(
    executor: str | None,
    dask_scheduler: str | None,
    default: str,
    dask_cluster: ClusterSpec | None = None,
) -> tuple[str, str | None]:
    """The executor and scheduler to use: the arguments, else the environment
    (``MLWIDGET_EXECUTOR``; ``MLWIDGET_DASK_SCHEDULER`` or ``MLWIDGET_DASK_CLUSTER`` set means
    dask), else ``default``."""
    scheduler = dask_scheduler or os.environ.get(ENV_SCHEDULER) or None
    cluster = dask_cluster or os.environ.get(ENV_CLUSTER) or None
    chosen = (
        executor or os.environ.get(ENV_EXECUTOR) or ("dask" if scheduler or cluster else default)
    )
    if chosen not in EXECUTORS:
        raise ValueError(f"Expected executor to be one of {', '.join(EXECUTORS)}, got {chosen!r}.")
    return chosen, scheduler if chosen == "dask" else None


def shared_runner(
    executor: str | None = None,
    dask_scheduler: str | None = None,
    job_timeout: float | None = None,
    default: str = "process",
    dask_cluster: ClusterSpec | None = None,
    dask_worker_wait: float | None = None,
) -> Runner:
    """The runner this process shares for these settings (one pool of worker processes per
    kernel, however many models it opens). ``dask_cluster`` and ``dask_worker_wait`` default
    to ``$MLWIDGET_DASK_CLUSTER`` and ``$MLWIDGET_DASK_WORKER_WAIT``."""
    chosen, scheduler = resolve(executor, dask_scheduler, default, dask_cluster)
    cluster = (dask_cluster or os.environ.get(ENV_CLUSTER) or None) if chosen == "dask" else None
    wait = worker_wait(dask_worker_wait)
    key = (chosen, scheduler, job_timeout, cluster, wait)
    with _shared_lock:
        runner = _shared.get(key)
        if runner is None:
            from ..estimators import usable_cpus

            runner = Runner(
                chosen,
                max_workers=max(2, usable_cpus()),
                job_timeout=job_timeout,
                dask_scheduler=scheduler,
                dask_cluster=cluster,
                dask_worker_wait=wait,
            )
            _shared[key] = runner
        return runner
