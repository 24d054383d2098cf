"""A job: one piece of long work on one model (retrain, score, predict), the errors it ends
with, and ``board``, the jobs this process knows (see job_board.py).

A ``Job`` is created ``queued``, runs (``running``, with a ``stage`` and, where the estimator
can say, a ``progress`` fraction), and ends ``done`` (with a result), ``failed`` (with an error)
or ``cancelled``. Its state is read by any thread (REST's ``?_job``, a widget's progress bar);
the executor that runs it is the only writer.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ..errors import Conflict, Forbidden, Gone, MLWidgetError, NotFound
from . import results as results_
from .job_board import Board
from .pause import Pause
from .results import StoredResult, Summarized

STATUSES = ("queued", "running", "done", "failed", "cancelled")
# The share of a whole job each stage spans, for ``overall`` (a retrain fits, scores and saves;
# the crossval job that follows it runs its folds, "cv", and saves the score).
SPANS = {
    "queued": (0.0, 0.0),
    "load": (0.0, 0.02),
    "fit": (0.02, 0.95),
    "cv": (0.02, 0.95),
    "search": (0.02, 0.9),  # a search's candidates and folds; then its best is refit ("fit")
    "predict": (0.02, 0.97),
    # an importance job fits a copy of the model on part of its data, then shuffles columns
    "holdout": (0.02, 0.4),
    "importance": (0.4, 0.97),
    "score": (0.95, 0.97),
    "save": (0.97, 1.0),
}
FINISHED = ("done", "failed", "cancelled")
POLL = 0.05  # seconds between checks of a running job for cancel and timeout

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
        self.waited = 0.0  # seconds spent waiting for a worker process to start: not timed
        # who started it (a user name, when a server knows it): its result is theirs to read
        self.caller: str | None = None
        self.answer_format: str | None = None  # the _format its answer was asked in, if any
        self.stored: StoredResult | None = None  # an answer kept on disk (see results.py)
        self.removed: str | None = None  # why the stored answer is gone, once it is
        self.dashboard: str | None = None  # the Dask dashboard's URL, for a job on Dask
        # (monotonic time, progress) of the stage's first and latest fractions: eta_seconds
        self._since: tuple[float, float] | None = None
        self._latest: tuple[float, float] | None = None
        self._lock = threading.Lock()
        self._cancel_hooks: list[Any] = []
        self._failure_hooks: list[Any] = []

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

    def to_dict(self, url: str | None = None, result: bool = True) -> dict[str, Any]:
        """The ``?_job`` answer; ``result=False`` (``?_jobs``) leaves results out. A result kept
        on disk shows as its summary, with the URL that streams it (``&_result``).
        ``eta_seconds``: the time the current stage still needs, from the pace of its fractions
        so far; None when none can be said (no fractions yet, or the job is not running)."""
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
                "eta_seconds": self._eta(),
            }
            if url is not None:
                out["url"] = url
            if self.dashboard:
                out["dashboard"] = self.dashboard
            if self.status == "done" and result and self.stored is not None:
                stored = self.stored.summary(None if url is None else f"{url}&_result")
                if self.removed:
                    stored["removed"] = self.removed
                answer = self.future.result()
                # a summary whose rows are on disk (a replay's differences): both
                out["result"] = (
                    {**answer, "download": stored} if isinstance(answer, dict) else stored
                )
            elif self.status == "done" and result:
                answer = self.future.result()
                if isinstance(answer, dict | list):  # answers; not a Python-only object
                    out["result"] = answer
            if self.error is not None:
                out["error"] = self.error
            return out

    def result(self, timeout: float | None = None) -> Any:
        """The job's result, waiting up to ``timeout`` seconds (None: until it ends). Raises the
        job's error (an ``MLWidgetError``, as the same call without a job would), or
        ``TimeoutError`` if it is still running after ``timeout``. An answer kept on disk is
        read back (``Gone`` once it was removed)."""
        try:
            answer = self.future.result(timeout)
        except FutureTimeout:
            raise TimeoutError(
                f"Job {self.id} ({self.action} of {self.model!r}) is still {self.status} after "
                f"{timeout} s."
            ) from None
        if isinstance(answer, StoredResult):
            return self.stored_result().load()
        return answer

    def stored_result(self, caller: str | None = None) -> StoredResult:
        """The answer kept on disk, for ``caller`` (None: this process's own code). Forbidden
        to another caller than the one who started the job; Gone once removed."""
        if self.status != "done" or self.stored is None:
            state = f"is {self.status}" if self.status != "done" else "has no stored rows"
            raise NotFound(
                f"Job {self.id} ({self.action} of {self.model!r}) {state}: only a finished "
                "prediction job has rows to fetch (GET ?_job=ID shows the job)."
            )
        if caller is not None and self.caller is not None and caller != self.caller:
            raise Forbidden(
                f"Job {self.id}'s result belongs to the caller who started it "
                f"({self.caller!r}); ask them, or run the job yourself."
            )
        if self.removed or not self.stored.exists():
            raise Gone(
                f"Job {self.id}'s result was removed ({self.removed or 'its file is gone'}). "
                "Run the job again."
            )
        return self.stored

    def forget(self, why: str) -> int:
        """Remove the answer kept on disk (the job stays listed); the bytes freed."""
        with self._lock:
            stored = None if self.removed else self.stored
            if stored is not None:
                self.removed = why
        if stored is None:
            return 0
        stored.remove()
        results_.kept.discard(stored.path)
        return stored.bytes

    @property
    def eta_seconds(self) -> float | None:
        """Seconds the current stage still needs, at the pace of its progress so far (see
        ``to_dict``); None when the job is not running or its stage cannot say."""
        with self._lock:
            return self._eta()

    def _eta(self) -> float | None:
        """``eta_seconds``, under the lock: the stage's fraction left at the rate its fractions
        came so far, less the time since the latest one (never below 0)."""
        if self.status != "running" or self._since is None or self._latest is None:
            return None
        (t0, p0), (t1, p1) = self._since, self._latest
        if p1 <= p0 or t1 <= t0:  # one fraction so far: no pace yet
            return None
        left = (1.0 - p1) * (t1 - t0) / (p1 - p0) - (time.monotonic() - t1)
        return round(max(0.0, left), 1)

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

    def on_failure(self, hook: Any) -> None:
        """Call ``hook()`` if the job ends failed or cancelled (to remove what it half wrote)."""
        with self._lock:
            self._failure_hooks.append(hook)

    def _failed(self) -> None:
        for hook in self._failure_hooks:
            _call(hook)

    def check_stop(self, deadline: float | None) -> None:
        """Raise ``Stop`` if the job was cancelled, or ran past ``deadline`` (the time it waited
        for a worker process to start not counted): then it is marked timed out."""
        if self.stop.is_set():
            raise Stop
        if deadline is not None and time.time() > deadline + self.waited:
            self.time_out()
            raise Stop

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
                self._since = self._latest = None
                if progress is not None or stage != "score":
                    self.progress = progress
            elif progress is not None:
                self.progress = max(progress, self.progress or 0.0)
            if progress is not None and self.progress is not None:
                now = time.monotonic()
                self._since = self._since or (now, self.progress)
                self._latest = (now, self.progress)
            low, high = SPANS.get(self.stage, (self.overall, self.overall))
            self.overall = max(self.overall, low + (high - low) * (self.progress or 0.0))
        pause = Pause.active  # a test hook; None unless a test opened a Pause
        if pause is not None:
            pause.hold(self, stage, progress)

    def finish(self, result: Any) -> None:
        with self._lock:
            if self.done:
                if isinstance(result, StoredResult | Summarized):
                    result.remove()
                return
            if isinstance(result, Summarized):  # the summary is the answer, its rows on disk
                self.stored, result = result.stored, result.summary
                results_.kept.add(self.stored.path)
            elif isinstance(result, StoredResult):
                self.stored = result
                results_.kept.add(result.path)
            self.status, self.stage, self.finished = "done", "done", time.time()
            self.progress = self.overall = 1.0
        board.finished(self)  # before waiters wake: they see the board as it will stay
        self.future.set_result(result)

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
        self._failed()
        board.finished(self)
        self.future.set_exception(exc)

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
        self._failed()
        board.finished(self)
        self.future.set_exception(error)


def _call(hook: Any) -> None:
    """A hook's failure (a Dask scheduler gone, at a cancel) is logged; the job goes on."""
    try:
        hook()
    except Exception as exc:
        log.warning("mlwidget: a job's cancel hook failed: %s: %s", type(exc).__name__, exc)


board: Board[Job] = Board()
