"""Long actions of a form (training, bulk predictions) on a background thread: ``TaskRunner``
and the Cancel button of the job a task follows."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import ipywidgets as widgets

from .. import tasks
from ..errors import MLWidgetError
from ._common import Status, button

log = logging.getLogger("mlwidget.widgets")


def _on_kernel_thread() -> Callable[[Callable[[], None]], None]:
    """How to run a callback on the kernel's own thread (its IO loop), where widget state
    changes belong; outside a kernel (scripts, tests) the callback runs where it is."""
    try:
        from IPython import get_ipython

        loop = getattr(getattr(get_ipython(), "kernel", None), "io_loop", None)
    except ImportError:
        loop = None
    if loop is None:
        return lambda callback: callback()
    return loop.add_callback


class TaskRunner:
    """Runs long actions (training, bulk predictions) on one background worker thread.

    While a task runs, every registered button is disabled and the progress bar shows it is
    busy, so the notebook stays responsive; the result (or the error) is shown from the
    kernel's own thread. One runner is shared by all forms of an app: one task at a time.
    (Not :class:`mlwidget.jobs.Runner`, which runs a model's jobs on its executor: a task here
    starts such a job and ``follow``s it.)
    """

    def __init__(self) -> None:
        self.buttons: list[widgets.Button] = []
        self.job: Any = None  # the job the running task follows (see follow())
        self._view: tuple[str, Status, widgets.IntProgress, Any] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlwidget-task")
        self._future: Future | None = None
        self._pending: Callable[[], None] | None = None  # the result, not yet shown
        self._shown = threading.Event()
        self._shown.set()
        self._lock = threading.RLock()  # a task that ends at once is shown inside run()

    def register(self, *buttons: widgets.Button) -> None:
        self.buttons.extend(buttons)

    @property
    def busy(self) -> bool:
        return not self._shown.is_set()

    def run(
        self,
        label: str,
        work: Callable[[], Any],
        done: Callable[[Any], None],
        status: Status,
        progress: widgets.IntProgress,
        failed: Callable[[BaseException], None] | None = None,
        cancel: widgets.Button | None = None,
    ) -> bool:
        """Start ``work()`` on the worker; then ``done(result)`` (or show the error) on the
        kernel's thread. False if a task is running already. A ``work`` that follows a job
        (``runner.follow(job)``) shows its stage, progress and elapsed time, and ``cancel``
        (shown meanwhile) cancels it."""
        with self._lock:
            if self.busy:
                status.show("Another task is running; wait until it ends.", "error")
                return False
            self._shown.clear()
            was = {id(b): b.disabled for b in self.buttons}
            for b in self.buttons:
                b.disabled = True
            status.show(f"{label}…", "busy")
            progress.value, progress.bar_style = 0, "info"
            progress.layout.visibility = "visible"
            self._view = (label, status, progress, cancel)
            if cancel is not None:
                cancel.disabled = False
                cancel.layout.display = ""
            schedule = _on_kernel_thread()
            start = time.monotonic()

            def finished(future: Future) -> None:
                self._pending = lambda: self._show(
                    future, label, done, failed, status, progress, was
                )
                schedule(self._show_pending)

            self._future = self._executor.submit(work)
            self._future.add_done_callback(finished)
            log.debug("mlwidget task %r started at %.3f", label, start)
            return True

    def _show_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:  # once: from the kernel's loop, or from join(), whichever first
            pending()

    def _show(self, future, label, done, failed, status, progress, was) -> None:
        try:
            error = future.exception()
            if error is not None:
                progress.bar_style, progress.value = "danger", 100
                status.error(error)
                if failed is not None:
                    failed(error)
            else:
                progress.bar_style, progress.value = "success", 100
                done(future.result())
        except BaseException as err:  # a failure while showing the result
            status.error(err)
        finally:
            for b in self.buttons:
                b.disabled = was.get(id(b), False)
            cancel = self._view[3] if self._view else None
            if cancel is not None:
                cancel.layout.display = "none"
            self._view = None
            self._shown.set()

    # ------------------------------------------------------------------ jobs

    def follow(self, job: Any, every: float = 0.2) -> Any:
        """In a task's ``work``: wait for ``job``, showing its state as it changes, and
        return its result (or raise its error, as the call without a job would)."""
        self.job = job
        schedule = _on_kernel_thread()
        try:
            while not job.done:
                schedule(lambda: self.show_job(job))
                try:
                    job.future.exception(timeout=every)
                except FutureTimeout:
                    pass
            answer = job.result()
        finally:
            self.job = None
        then = tasks.follow_up(job, answer)  # a retrain's cross-validation: shown, then filled
        if then is not None:
            with contextlib.suppress(MLWidgetError):
                answer["cv_score"] = self.follow(then, every)
        return answer

    def show_job(self, job: Any) -> None:
        """The job's stage, progress (never moving back) and elapsed time, in the task's
        status line and progress bar."""
        if self._view is None or job.done:
            return
        label, status, progress, _ = self._view
        state = job.to_dict(result=False)
        parts = [f"{label}: {state['status']}"]
        if state["status"] == "running":
            parts = [f"{label}: {STAGES.get(state['stage'], state['stage'])}"]
            if state["progress"] is not None:
                parts.append(f"{state['progress']:.0%}")
            progress.value = max(progress.value, int(state["overall"] * 100))
        if state["elapsed"] is not None:
            parts.append(f"{state['elapsed']:.1f} s")
        if state.get("eta_seconds") is not None:
            parts.append(time_left(state["eta_seconds"]))
        status.show(" · ".join(parts), "busy")

    def cancel(self) -> bool:
        """Cancel the job the running task follows (the Cancel button). False if none."""
        job = self.job
        if job is None or not job.cancel():
            return False
        if self._view is not None:
            self._view[1].show("Cancelling…", "busy")
        return True

    def join(self, timeout: float | None = 120) -> None:
        """Wait until the running task (if any) has finished and shown its result. Called on
        the kernel's thread (a notebook cell), it shows the result itself: the loop that would
        is the one waiting here."""
        future = self._future
        if future is None:
            return
        try:
            future.exception(timeout=timeout)
        except FutureTimeout:
            raise TimeoutError(f"the task did not finish within {timeout} s") from None
        self._show_pending()
        if not self._shown.wait(timeout):
            raise TimeoutError(f"the task did not finish within {timeout} s")


STAGES = {"cv": "cross-validation"}  # a stage's name where the progress line shows it


def time_left(seconds: float) -> str:
    """A job's ``eta_seconds`` as the progress line shows it: "about 40 s left"."""
    if seconds < 1:
        return "almost done"
    if seconds < 90:
        return f"about {seconds:.0f} s left"
    return f"about {seconds / 60:.0f} min left"


def cancel_button(runner: TaskRunner, css: str) -> widgets.Button:
    """The Cancel button of a form: shown while its task follows a job; cancels the job."""
    b = button("Cancel", css, "Stop the running job; nothing is stored", "warning")
    b.layout.display = "none"
    b.on_click(lambda _: runner.cancel())
    return b
