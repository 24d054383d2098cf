"""Pieces every form shares: error text, status lines, background tasks, plots as PNG."""

from __future__ import annotations

import html
import io
import logging
import threading
import time
from collections.abc import Callable, Iterable
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


def jsonable(value: Any) -> Any:
    """A plain Python value for numpy scalars (widgets and JSON want plain values)."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (list, tuple, dict, str)):
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


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


class Runner:
    """Runs long actions (training, bulk predictions) in a background thread.

    While a task runs, every registered button is disabled and the progress bar moves, so the
    notebook stays responsive. One runner is shared by all forms of an app: one task at a time.
    """

    def __init__(self) -> None:
        self.buttons: list[widgets.Button] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def register(self, *buttons: widgets.Button) -> None:
        self.buttons.extend(buttons)

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(
        self,
        label: str,
        work: Callable[[], Any],
        done: Callable[[Any], None],
        status: Status,
        progress: widgets.IntProgress,
        failed: Callable[[BaseException], None] | None = None,
    ) -> bool:
        """Start ``work()`` in a thread; then ``done(result)`` (or show the error). False if busy."""
        with self._lock:
            if self.busy:
                status.show("Another task is running; wait until it ends.", "error")
                return False
            was = {id(b): b.disabled for b in self.buttons}
            for b in self.buttons:
                b.disabled = True
            status.show(f"{label}…", "busy")
            progress.value, progress.bar_style = 0, "info"
            progress.layout.visibility = "visible"
            self._thread = threading.Thread(
                target=self._main,
                args=(label, work, done, failed, status, progress, was),
                name=f"mlwidget-{label}",
                daemon=True,
            )
            self._thread.start()
            return True

    def _main(self, label, work, done, failed, status, progress, was) -> None:
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["result"] = work()
            except BaseException as err:  # shown to the user below
                box["error"] = err

        inner = threading.Thread(target=target, daemon=True)
        start = time.monotonic()
        inner.start()
        while inner.is_alive():
            inner.join(0.2)
            # No real progress is known: creep towards 90% so the bar visibly moves.
            elapsed = time.monotonic() - start
            progress.value = min(90, int(90 * (1 - 1 / (1 + elapsed / 3))))
        try:
            if "error" in box:
                progress.bar_style, progress.value = "danger", 100
                status.error(box["error"])
                if failed is not None:
                    failed(box["error"])
            else:
                progress.bar_style, progress.value = "success", 100
                done(box.get("result"))
        except BaseException as err:  # a failure while showing the result
            status.error(err)
        finally:
            for b in self.buttons:
                b.disabled = was.get(id(b), False)

    def join(self, timeout: float | None = 120) -> None:
        """Wait until the running task (if any) has finished and shown its result."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"the task did not finish within {timeout} s")


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


def table_html(df, max_rows: int = 10, css: str = "mlwidget-table") -> str:
    """The first rows of ``df`` as an HTML table, with the row count under it."""
    head = df.head(max_rows).to_html(index=False, classes=css, border=0, na_rep="", escape=True)
    n = len(df)
    more = f"first {min(n, max_rows)} of {n} rows" if n > max_rows else f"{n} rows"
    return (
        '<div style="overflow:auto;max-height:360px">'
        f"{head}</div>"
        f'<div class="mlwidget-rowcount" data-rows="{n}">{esc(more)}</div>'
    )


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
