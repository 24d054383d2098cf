"""The board: the jobs a process knows, by id and by model, and each model's running writer.

A second writer to a model whose retrain job is running is refused at once (409) naming that
job, instead of waiting for the model's lock. Finished jobs past ``KEEP`` a model are forgotten,
and stored results past ``results.KEEP_BYTES`` on the process removed, oldest first. The board
reads only what ``Posted`` lists of a job; ``job.board`` is this process's board of ``Job``s.
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, Protocol, TypeVar

from ..errors import Conflict, NotFound
from . import results as results_
from .results import StoredResult

KEEP = 20  # finished jobs remembered per model (their result files go with them)


class Posted(Protocol):
    """What the board reads of a job (``job.Job`` is one)."""

    id: str
    action: str
    model: str
    key: tuple[str, str]  # (store root, model name)
    writer: bool
    status: str
    finished: float | None
    stored: StoredResult | None
    removed: str | None

    @property
    def done(self) -> bool: ...

    def forget(self, why: str) -> int: ...


J = TypeVar("J", bound=Posted)


class Board(Generic[J]):
    """The jobs of this process: by id, and each model's running writer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, J] = {}
        self._by_model: dict[tuple[str, str], collections.deque[J]] = {}
        self._writers: dict[tuple[str, str], J] = {}

    def add(self, job: J) -> None:
        """Register ``job``; a writer while the model has a running writer is a 409."""
        with self._lock:
            if job.writer:
                running = self._writers.get(job.key)
                if running is not None and not running.done:
                    raise busy(running)
                self._writers[job.key] = job
            self._by_model.setdefault(job.key, collections.deque()).appendleft(job)
            self._jobs[job.id] = job

    def check_free(self, key: tuple[str, str]) -> None:
        """409 (naming the job) if a writer job is running on this model."""
        with self._lock:
            running = self._writers.get(key)
        if running is not None and not running.done:
            raise busy(running)

    def finished(self, job: J) -> None:
        """A job ended: the model's writer is free; the oldest finished jobs past ``KEEP`` a
        model are forgotten, and the oldest stored results past ``KEEP_BYTES`` removed."""
        with self._lock:
            if self._writers.get(job.key) is job:
                del self._writers[job.key]
            recent = self._by_model.get(job.key, collections.deque())
            ended = [j for j in recent if j.done]  # newest first
            dropped = ended[KEEP:]
            for old in dropped:
                recent.remove(old)
                self._jobs.pop(old.id, None)
            stored = sorted(
                (j for j in self._jobs.values() if j.stored is not None and not j.removed),
                key=lambda j: j.finished or 0.0,
                reverse=True,
            )
        for old in dropped:
            old.forget("the job was forgotten")
        total = 0
        for kept in stored:  # newest first: the oldest go past the budget
            total += kept.stored.bytes if kept.stored is not None else 0
            if total > results_.KEEP_BYTES and kept is not job:
                kept.forget(
                    f"results past {results_.KEEP_BYTES:,} bytes on this server are removed, "
                    "oldest first"
                )

    def get(self, job_id: str) -> J | None:
        with self._lock:
            return self._jobs.get(job_id)

    def find(self, key: tuple[str, str], job_id: str) -> J:
        """The job ``job_id`` of the model ``key`` (NotFound if this process has none)."""
        job = self.get(job_id)
        if job is None or job.key != key:
            raise NotFound(
                f"Model {key[1]!r} has no job {job_id!r}: jobs are kept while the process that "
                "ran them runs (GET ?_jobs lists them; a kernel's jobs: model.jobs())."
            )
        return job

    def of_model(self, key: tuple[str, str]) -> list[J]:
        """The model's recent jobs, newest first."""
        with self._lock:
            return list(self._by_model.get(key, ()))

    def active(self) -> list[J]:
        with self._lock:
            return [job for job in self._jobs.values() if not job.done]


def busy(job: Posted) -> Conflict:
    error = Conflict(
        f"Model {job.model!r} is busy: job {job.id} ({job.action}) is {job.status}. Wait for it "
        f"(GET ?_job={job.id}) or cancel it (DELETE ?_job={job.id}), then try again."
    )
    error.job = job.id  # type: ignore[attr-defined]  # REST adds it to the answer
    return error
