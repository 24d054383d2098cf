"""A test hook: hold a job at one of its progress reports until the test lets it go (see
``Pause``; "Testing" in docs/jobs.md). Nothing is held unless a test opens a ``Pause``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Pause:
    """A test hook: hold a job at a progress report until the test lets it go.

    ``with Pause("fit") as pause:`` holds the first job of this process that reports the stage
    ``"fit"`` (and, given ``when``, a fraction ``when(progress)`` accepts), in ``Job.report``
    right after the report is recorded, on the thread that reported it (the job's driver). The
    job stays running at that stage and progress: ``pause.reached`` is set, ``pause.job`` is
    the job, and ``pause.holding`` is True until ``pause.release()`` or the end of the
    ``with``. A job is held ``within`` seconds at most, then goes on and ``pause.expired`` is
    set, so a test whose work could only go on once the job did fails instead of hanging.

    One pause at a time; ``Pause.active`` is None (and ``Job.report`` holds nothing) unless a
    test opened one. See "Testing" in docs/jobs.md.
    """

    active: Pause | None = None

    def __init__(
        self,
        stage: str,
        when: Callable[[float | None], bool] | None = None,
        within: float = 60.0,
    ) -> None:
        self.stage, self.when, self.within = stage, when, within
        self.job: Any = None  # the held mlwidget.jobs.Job
        self.reached = threading.Event()
        self.expired = False
        self._released = threading.Event()
        self._claim = threading.Lock()

    def __enter__(self) -> Pause:
        if Pause.active is not None:
            raise RuntimeError("Another Pause is active; one at a time.")
        Pause.active = self
        return self

    def __exit__(self, *exc: object) -> None:
        Pause.active = None
        self.release()

    @property
    def holding(self) -> bool:
        """A job is held here now (and has been since ``reached`` was set)."""
        return self.reached.is_set() and not self._released.is_set() and not self.expired

    def release(self) -> None:
        """Let the held job go on (and hold none after it)."""
        self._released.set()

    def hold(self, job: Any, stage: str, progress: float | None) -> None:
        """From ``Job.report``: wait here if this is the report to hold."""
        with self._claim:
            if self.job is not None or self._released.is_set() or stage != self.stage:
                return
            if self.when is not None and not self.when(progress):
                return
            self.job = job
        self.reached.set()
        if not self._released.wait(self.within):
            self.expired = True
