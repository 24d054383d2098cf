"""The Summary tab's global importance: a button that runs ``model.importance()`` as a job (its
progress and Cancel as the other forms show them) and a bar chart of the answer, each input
column's mean drop in the model's score on held-out rows when it is shuffled, with its std."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ._common import Status, button, esc, progress_bar
from .render import figure_png
from .runner import TaskRunner, cancel_button

MAX_BARS = 20


def plot(answer: dict[str, Any]) -> bytes:
    """The answer of ``model.importance()`` as horizontal bars (largest on top), the std over
    the shuffles as error bars."""
    columns = answer["importance"][:MAX_BARS][::-1]
    names = [str(c["column"]) for c in columns]
    means = [c["mean"] for c in columns]
    stds = [c["std"] for c in columns]

    def draw(ax: Any) -> None:
        colors = ["#1e88e5" if m >= 0 else "#e53935" for m in means]
        ax.barh(names, means, xerr=stds, color=colors, ecolor="#555", capsize=3)
        ax.axvline(0, color="#555", linewidth=0.8)
        ax.set_title(f"Permutation importance ({answer['rows']:,} held-out rows)")
        ax.set_xlabel(f"drop in {answer['metric']} when the column is shuffled")
        ax.tick_params(axis="y", labelsize=8)

    return figure_png(draw, (5.5, max(2.5, 0.3 * len(names) + 1.2)))


def caption(answer: dict[str, Any]) -> str:
    return (
        f"<small>Each column shuffled {answer['repeats']} times on {esc(answer['on'])}, "
        f"scored by a copy of the model fitted on the other {answer['train_rows']:,} rows "
        f"({esc(answer['metric'])} {answer['baseline']:.3g} unshuffled). Near 0: the model "
        "does not use the column.</small>"
    )


class ImportanceView(widgets.VBox):
    """ "Compute importance": the job's progress, then the chart. ``answer`` is the last one
    shown; ``wait()`` waits for a running computation (tests, notebooks)."""

    def __init__(self, model: Any, **kwargs: Any) -> None:
        self.model = model
        self.answer: dict[str, Any] | None = None
        self.runner = TaskRunner()  # its own: it changes nothing, so it need not wait for others
        self.compute_button = button(
            "Compute importance",
            "mlwidget-importance-compute",
            "Shuffle each column on held-out rows and measure how much the score drops (a job)",
        )
        self.compute_button.on_click(lambda _: self.compute())
        self.runner.register(self.compute_button)
        self.progress = progress_bar("mlwidget-importance-progress")
        self.cancel_button = cancel_button(self.runner, "mlwidget-importance-cancel")
        self.status = Status("mlwidget-importance-status")
        self.image = widgets.Image(format="png", layout={"max_width": "560px", "display": "none"})
        self.image.add_class("mlwidget-plot-permutation")
        self.caption = widgets.HTML()
        self.caption.add_class("mlwidget-importance-caption")
        title = widgets.HTML(
            "<b>Global importance</b> <small>(permutation on held-out rows)</small>"
        )
        super().__init__(
            children=[
                title,
                widgets.HBox([self.compute_button, self.progress, self.cancel_button]),
                self.status,
                self.image,
                self.caption,
            ],
            **kwargs,
        )
        self.add_class("mlwidget-importance")

    def compute(self) -> bool:
        """Start the importance job in the background; False if one is running."""
        return self.runner.run(
            "Importance",
            lambda: self.runner.follow(self.model.importance(wait=False)),
            self.show,
            self.status,
            self.progress,
            cancel=self.cancel_button,
        )

    def show(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.image.value = plot(answer)
        self.image.layout.display = ""
        self.caption.value = caption(answer)
        top = ", ".join(str(c["column"]) for c in answer["importance"][:3])
        self.status.show(f"Most important: {top}.", "ok")

    def wait(self, timeout: float | None = 120) -> None:
        self.runner.join(timeout)
