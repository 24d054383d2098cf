"""Pieces every form shares: error text, status lines, background tasks, plots as PNG."""

from __future__ import annotations

import html
import io
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import ipywidgets as widgets

from ..errors import MLWidgetError

log = logging.getLogger("mlwidget.widgets")


def error_text(err: BaseException) -> str:
    """The message a user sees for ``err``: the REST message for our errors, never a traceback."""
    if isinstance(err, MLWidgetError):
        return str(err)
    log.exception("unexpected error in a mlwidget form", exc_info=err)
    text = str(err) or type(err).__name__
    return f"Unexpected error ({type(err).__name__}): {text}"


def esc(value: Any) -> str:
    return html.escape(str(value))


class Status(widgets.HTML):
    """One line of feedback under a form: info, success or error text."""

    def __init__(self, css: str, **kwargs: Any) -> None:
        super().__init__(value="", **kwargs)
        self.add_class("mlwidget-status")
        self.add_class(css)
        self.kind = ""
        self.text = ""

    def show(self, text: str, kind: str = "info") -> None:
        colors = {"info": "#444", "ok": "#1b5e20", "error": "#b71c1c", "busy": "#0d47a1"}
        self.kind, self.text = kind, text
        self.value = (
            f'<div class="mlwidget-msg mlwidget-msg-{kind}" '
            f'style="color:{colors.get(kind, "#444")};white-space:pre-wrap">{esc(text)}</div>'
        )

    def error(self, err: BaseException | str) -> None:
        self.show(err if isinstance(err, str) else error_text(err), "error")

    def clear(self) -> None:
        self.kind, self.text, self.value = "", "", ""


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
            return job.result()
        finally:
            self.job = None

    def show_job(self, job: Any) -> None:
        """The job's stage, progress (never moving back) and elapsed time, in the task's
        status line and progress bar."""
        if self._view is None or job.done:
            return
        label, status, progress, _ = self._view
        state = job.to_dict()
        parts = [f"{label}: {state['status']}"]
        if state["status"] == "running":
            parts = [f"{label}: {state['stage']}"]
            if state["progress"] is not None:
                parts.append(f"{state['progress']:.0%}")
            progress.value = max(progress.value, int(state["overall"] * 100))
        if state["elapsed"] is not None:
            parts.append(f"{state['elapsed']:.1f} s")
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


def cancel_button(runner: TaskRunner, css: str) -> widgets.Button:
    """The Cancel button of a form: shown while its task follows a job; cancels the job."""
    b = button("Cancel", css, "Stop the running job; nothing is stored", "warning")
    b.layout.display = "none"
    b.on_click(lambda _: runner.cancel())
    return b


def progress_bar(css: str) -> widgets.IntProgress:
    bar = widgets.IntProgress(
        value=0, min=0, max=100, description="", layout=widgets.Layout(width="240px")
    )
    bar.layout.visibility = "hidden"
    bar.add_class("mlwidget-progress")
    bar.add_class(css)
    return bar


def button(description: str, css: str, tooltip: str = "", style: str = "") -> widgets.Button:
    b = widgets.Button(description=description, tooltip=tooltip or description, button_style=style)
    b.add_class("mlwidget-button")
    b.add_class(css)
    return b


DIGITS = 4  # significant digits of the numbers a form shows (downloads and REST keep all)


def fmt_num(value: Any, digits: int = DIGITS) -> str:
    """A number as a person reads it: ``digits`` significant digits, no exponent for everyday
    magnitudes, trailing zeros dropped (0.812345 -> 0.8123, 151.765 -> 151.8, 3.0 -> 3).
    Anything else is ``str(value)``; None and NaN are empty."""
    import math

    import numpy as np

    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if not isinstance(value, float | np.floating):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return ""
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 15 or magnitude < -5:
        return f"{value:.{digits - 1}e}"
    if magnitude >= digits - 1:
        text = f"{round(value):d}"
    else:
        text = f"{value:.{digits - 1 - magnitude}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def clean_label(value: Any) -> str:
    """A category as a label: 3.0 -> "3" (a float column of whole numbers), else as written."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    try:
        import numpy as np

        if isinstance(value, np.floating) and float(value).is_integer():
            return str(int(value))
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def is_numeric(series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def table_html(
    df, max_rows: int = 10, css: str = "mlwidget-table", mark: Iterable[str] = ()
) -> str:
    """The first rows of ``df`` as an HTML table (numbers rounded to significant digits and
    right-aligned under right-aligned headers, text left under left headers; the ``mark``
    columns highlighted), with the row count under it."""
    marked = {str(c) for c in mark}
    head = df.head(max_rows)
    columns = [str(c) for c in head.columns]
    numeric = [is_numeric(head[c]) for c in head.columns]
    th, rows = [], []
    for name, num in zip(columns, numeric, strict=True):
        style = f"text-align:{'right' if num else 'left'};padding:2px 8px"
        extra = ""
        if name in marked:
            style += ";background:#e3f2fd"
            extra = ' class="mlwidget-marked" title="added by the model"'
        th.append(f'<th style="{style}"{extra}>{esc(name)}</th>')
    for values in head.itertuples(index=False, name=None):
        cells = []
        for name, num, value in zip(columns, numeric, values, strict=True):
            style = f"text-align:{'right' if num else 'left'};padding:2px 8px"
            if name in marked:
                style += ";background:#e3f2fd;font-weight:bold"
            text = fmt_num(value) if not _missing(value) else ""
            cells.append(f'<td style="{style}">{esc(text)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    table = (
        f'<table class="{css}" style="border-collapse:collapse">'
        f"<thead><tr>{''.join(th)}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    n = len(df)
    more = f"first {min(n, max_rows)} of {n} rows" if n > max_rows else f"{n} rows"
    return (
        '<div style="overflow:auto;max-height:360px">'
        f"{table}</div>"
        f'<div class="mlwidget-rowcount" data-rows="{n}">{esc(more)}</div>'
    )


def _missing(value: Any) -> bool:
    try:
        import pandas as pd

        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%Y-%m-%d %H:%M:%S")


def date_format(values: Iterable[Any]) -> str | None:
    """The strftime format every (non-empty) value is written in, if they are all dates of one
    format (``"2021-03-04"``, ``"04/03/2021"``...), else None. Dates and timestamps: ISO."""
    import datetime as dt

    seen = [v for v in values if v is not None and not _missing(v)]
    if not seen:
        return None
    if all(isinstance(v, dt.date) for v in seen):
        return "%Y-%m-%d"
    if not all(isinstance(v, str) for v in seen):
        return None
    for fmt in DATE_FORMATS:
        try:
            for v in seen[:200]:
                dt.datetime.strptime(v.strip(), fmt)
        except ValueError:
            continue
        return fmt
    return None


def figure_png(draw: Callable[[Any], None], size: tuple[float, float] = (5.5, 4)) -> bytes:
    """Draw on a fresh Agg figure (no pyplot state, thread-safe) and return PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    draw(ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def tags(values: Iterable[Any]) -> list[str]:
    return [str(v) for v in values or []]
