"""A job: one piece of long work on one model (retrain, score, predict), and the board of jobs a
process knows.

A ``Job`` is created ``queued``, runs (``running``, with a ``stage`` and, where the estimator
can say, a ``progress`` fraction), and ends ``done`` (with a result), ``failed`` (with an error)
or ``cancelled``. Its state is read by any thread (REST's ``?_job``, a widget's progress bar);
the executor that runs it is the only writer.

The ``board`` holds the jobs of this process by id, and the running writer of each model: a
second writer to a model whose retrain job is running is refused at once (409) naming that job,
instead of waiting for the model's lock.
"""

from __future__ import annotations

import collections
import datetime as _dt
import logging
import threading
import time
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ..errors import Conflict, MLWidgetError

STATUSES = ("queued", "running", "done", "failed", "cancelled")
# The share of a whole job each stage spans, for ``overall`` (a fit's cross-validation refits
# the model a few times, so it weighs more than the fit itself; without it, cv is skipped).
SPANS = {
    "queued": (0.0, 0.0),
    "load": (0.0, 0.02),
    "fit": (0.02, 0.4),
    "cv": (0.4, 0.95),
    "predict": (0.02, 0.97),
    "score": (0.95, 0.97),
    "save": (0.97, 1.0),
}
FINISHED = ("done", "failed", "cancelled")
KEEP = 20  # finished jobs remembered per model

log = logging.getLogger("mlwidget.jobs")


class JobCancelled(Conflict):
    """The job was cancelled before it finished; nothing was stored (409)."""


class JobTimeout(MLWidgetError):
    """The job ran past ``job_timeout`` and was stopped; nothing was stored (408)."""

    status = 408


class WorkerDied(MLWidgetError):
    """The worker process running the job died (killed, or out of memory); nothing was stored."""

    status = 422


class TooManyJobs(MLWidgetError):
    """The job queue is full (429)."""

    status = 429


class Stop(BaseException):  # noqa: N818 -- a signal, like KeyboardInterrupt, not an error
    """Raised inside a job's work (by its progress report) to stop it: cancel or timeout.
    A BaseException so that the estimators' and mlwidget's ``except Exception`` let it pass."""


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="milliseconds")


class Job:
    """One job's state. ``result(timeout)`` waits for it; ``cancel()`` stops it."""

    def __init__(self, action: str, model: str, key: tuple[str, str], writer: bool) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.action = action
        self.model = model
        self.key = key  # (store root, model name)
        self.writer = writer
        self.status = "queued"
        self.stage = "queued"
        self.progress: float | None = None
        self.overall = 0.0  # of the whole job, never moving back (see SPANS)
        self.error: str | None = None
        self.error_status: int | None = None
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.future: Future = Future()
        # running from the start: a waiter's timeout or cancel (asyncio.wait_for on a wrapped
        # future) must not cancel the job's own future, or the job could never finish
        self.future.set_running_or_notify_cancel()
        self.stop = threading.Event()  # set by cancel() and on timeout
        self.stop_reason: str | None = None
        self.committing = False  # from then on the job cannot be cancelled
        self._lock = threading.Lock()
        self._cancel_hooks: list[Any] = []

    def __repr__(self) -> str:
        done = f" {self.progress:.0%}" if self.progress is not None else ""
        return f"<Job {self.id} {self.action} {self.model!r} {self.status} ({self.stage}){done}>"

    # ------------------------------------------------------------------ reading

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    @property
    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        return round((self.finished or time.time()) - self.started, 3)

    def to_dict(self, url: str | None = None) -> dict[str, Any]:
        """The ``?_job`` answer."""
        with self._lock:
            out: dict[str, Any] = {
                "job": self.id,
                "model": self.model,
                "action": self.action,
                "status": self.status,
                "stage": self.stage,
                "progress": None if self.progress is None else round(self.progress, 4),
                "overall": round(self.overall, 4),
                "created": _iso(self.created),
                "started": _iso(self.started),
                "finished": _iso(self.finished),
                "elapsed": self.elapsed,
            }
            if url is not None:
                out["url"] = url
            if self.status == "done":
                result = self.future.result()
                if isinstance(result, dict | list):  # answers; not a Python-only object
                    out["result"] = result
            if self.error is not None:
                out["error"] = self.error
            return out

    def result(self, timeout: float | None = None) -> Any:
        """The job's result, waiting up to ``timeout`` seconds (None: until it ends). Raises the
        job's error (an ``MLWidgetError``, as the same call without a job would), or
        ``TimeoutError`` if it is still running after ``timeout``."""
        try:
            return self.future.result(timeout)
        except FutureTimeout:
            raise TimeoutError(
                f"Job {self.id} ({self.action} of {self.model!r}) is still {self.status} after "
                f"{timeout} s."
            ) from None

    # ------------------------------------------------------------------ control

    def cancel(self) -> bool:
        """Stop the job: a queued job never starts, a running one is stopped (its worker
        process killed, or at its next progress report in the thread executor) and nothing is
        stored. False if it had already finished."""
        with self._lock:  # stop is set under the lock: a commit either began before, or never
            if self.done or self.committing:
                return False
            self.stop_reason = self.stop_reason or "cancelled"
            self.stop.set()
            hooks = list(self._cancel_hooks)
        for hook in hooks:
            _call(hook)
        if self.status == "queued":
            self.finish_cancelled()
        return True

    def on_cancel(self, hook: Any) -> None:
        """Call ``hook()`` when the job is cancelled (the executor's way to stop its work)."""
        with self._lock:
            self._cancel_hooks.append(hook)
            stopped = self.stop.is_set()
        if stopped:
            _call(hook)

    def time_out(self) -> None:
        """Stop the job because it ran past its deadline (unless it was cancelled first)."""
        with self._lock:
            if not self.stop.is_set():
                self.stop_reason = "timeout"
                self.stop.set()

    # ------------------------------------------------------------------ for executors

    def start(self) -> bool:
        """Mark it running; False if it was cancelled while queued."""
        with self._lock:
            if self.done or self.stop.is_set():
                return False
            self.status, self.stage, self.started = "running", "load", time.time()
            return True

    def begin_commit(self) -> bool:
        """From now on the result is being stored: False if the job was stopped first."""
        with self._lock:
            if self.stop.is_set():
                return False
            self.committing = True
            return True

    def report(self, stage: str, progress: float | None = None) -> None:
        """Progress from the work: the stage, and the fraction of it done (kept while None;
        never moving backwards within a stage)."""
        with self._lock:
            if self.done:
                return
            if stage != self.stage:
                self.stage = stage
                if progress is not None or stage != "score":
                    self.progress = progress
            elif progress is not None:
                self.progress = max(progress, self.progress or 0.0)
            low, high = SPANS.get(self.stage, (self.overall, self.overall))
            self.overall = max(self.overall, low + (high - low) * (self.progress or 0.0))

    def finish(self, result: Any) -> None:
        with self._lock:
            if self.done:
                return
            self.status, self.stage, self.finished = "done", "done", time.time()
            self.progress = self.overall = 1.0
        self.future.set_result(result)
        board.finished(self)

    def fail(self, exc: BaseException) -> None:
        if isinstance(exc, JobCancelled):
            self.finish_cancelled(exc)
            return
        with self._lock:
            if self.done:
                return
            self.status, self.finished = "failed", time.time()
            self.error = str(exc)
            self.error_status = getattr(exc, "status", 500)
        self.future.set_exception(exc)
        board.finished(self)

    def finish_cancelled(self, exc: BaseException | None = None) -> None:
        with self._lock:
            if self.done:
                return
            self.status, self.finished = "cancelled", time.time()
            if self.started is None:
                self.started = self.finished
        error = exc or JobCancelled(
            f"Job {self.id} ({self.action} of {self.model!r}) was cancelled; nothing was stored."
        )
        self.error = str(error)
        self.error_status = error.status if isinstance(error, MLWidgetError) else 409
        self.future.set_exception(error)
        board.finished(self)


def _call(hook: Any) -> None:
    """A cancel hook's failure (a Dask scheduler gone) is logged; the cancel still holds."""
    try:
        hook()
    except Exception as exc:
        log.warning("mlwidget: a job's cancel hook failed: %s: %s", type(exc).__name__, exc)


class Board:
    """The jobs of this process: by id, and each model's running writer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._by_model: dict[tuple[str, str], collections.deque[Job]] = {}
        self._writers: dict[tuple[str, str], Job] = {}

    def add(self, job: Job) -> None:
        """Register ``job``; a writer while the model has a running writer is a 409."""
        with self._lock:
            if job.writer:
                running = self._writers.get(job.key)
                if running is not None and not running.done:
                    raise busy(running)
                self._writers[job.key] = job
            recent = self._by_model.setdefault(job.key, collections.deque())
            recent.appendleft(job)
            self._jobs[job.id] = job
            while len(recent) > KEEP and recent[-1].done:
                self._jobs.pop(recent.pop().id, None)

    def check_free(self, key: tuple[str, str]) -> None:
        """409 (naming the job) if a writer job is running on this model."""
        with self._lock:
            running = self._writers.get(key)
        if running is not None and not running.done:
            raise busy(running)

    def finished(self, job: Job) -> None:
        with self._lock:
            if self._writers.get(job.key) is job:
                del self._writers[job.key]

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def find(self, key: tuple[str, str], job_id: str) -> Job:
        """The job ``job_id`` of the model ``key`` (NotFound if this process has none)."""
        from ..errors import NotFound

        job = self.get(job_id)
        if job is None or job.key != key:
            raise NotFound(
                f"Model {key[1]!r} has no job {job_id!r}: jobs are kept while the process that "
                "ran them runs (GET ?_jobs lists them; a kernel's jobs: model.jobs())."
            )
        return job

    def of_model(self, key: tuple[str, str]) -> list[Job]:
        """The model's recent jobs, newest first."""
        with self._lock:
            return list(self._by_model.get(key, ()))

    def active(self) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if not job.done]


def busy(job: Job) -> Conflict:
    error = Conflict(
        f"Model {job.model!r} is busy: job {job.id} ({job.action}) is {job.status}. Wait for it "
        f"(GET ?_job={job.id}) or cancel it (DELETE ?_job={job.id}), then try again."
    )
    error.job = job.id  # type: ignore[attr-defined]  # REST adds it to the answer
    return error


board = Board()
