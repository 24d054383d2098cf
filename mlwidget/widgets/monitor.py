"""The Monitor tab: what the model was asked and how it did once served, from
``model.monitor()`` (docs/monitoring.md): traffic and latency per version over time, the
predictions against the training target, the live metric on labelled feedback per version,
drift per feature with its warnings, and the shadow version against the serving one when
there is one. Refresh reads the log, the feedback and the training data again; what is shown
is monitor_view.py's (HTML) and monitor_plots.py's (PNG)."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from . import monitor_plots as plots
from . import monitor_view as view
from ._common import Status, button


class MonitorPanel(widgets.VBox):
    """The monitor of one model. ``report`` is the last answer of ``model.monitor()``;
    ``sections`` its HTML parts by name (overview, traffic, predictions, feedback, drift,
    shadow) and ``images`` its plots (PNG bytes) by name."""

    def __init__(self, model: Any, **kwargs: Any) -> None:
        self.model = model
        self.report: dict[str, Any] | None = None
        self.sections: dict[str, widgets.HTML] = {}
        self.images: dict[str, bytes] = {}
        self.refresh_button = button(
            "Refresh",
            "mlwidget-monitor-refresh",
            "Read the prediction log, the feedback and the training data again",
        )
        self.refresh_button.on_click(lambda _: self.refresh())
        self.status = Status("mlwidget-monitor-status")
        self.body = widgets.VBox()
        self.body.add_class("mlwidget-monitor-body")
        super().__init__(children=[self.refresh_button, self.status, self.body], **kwargs)
        self.add_class("mlwidget-monitor")
        self.refresh()

    def refresh(self) -> None:
        """Ask the model for its monitor again and show it (or the error)."""
        self.status.show("Reading the prediction log…", "busy")
        try:
            report = self.model.monitor()
            logging_on = bool((self.model.options or {}).get("log_predictions"))
        except Exception as err:
            self.status.error(err)
            return
        self.report = report
        self.sections, self.images = {}, {}
        children: list[widgets.Widget] = []

        def html(name: str, title: str | None, value: str) -> None:
            if not value:
                return
            w = widgets.HTML((view.heading(title) if title else "") + value)
            w.add_class(f"mlwidget-monitor-{name}")
            self.sections[name] = w
            children.append(w)

        def image(name: str, png: bytes | None) -> None:
            if png is None:
                return
            self.images[name] = png
            w = widgets.Image(value=png, format="png")
            w.add_class(f"mlwidget-monitor-plot-{name}")
            children.append(w)

        html("overview", None, view.overview_html(report, logging_on))
        shadow = report.get("shadow")
        if shadow is not None:
            html("shadow", "Shadow version against the serving one", view.shadow_html(shadow))
        if report.get("records"):
            html("traffic", "Traffic and latency", view.versions_html(report))
            image("traffic", plots.traffic_png(report))
            image("latency", plots.latency_png(report))
            predictions = report.get("predictions") or {}
            html(
                "predictions",
                "Predictions against the training data",
                view.predictions_html(report),
            )
            image("predictions", plots.distribution_png(predictions, "Predictions"))
        html("feedback", "Live metric on feedback", view.feedback_html(report))
        image("feedback", plots.feedback_png(report))
        if report.get("records"):
            html("drift", "Drift per feature", view.drift_html(report))
            image("psi", plots.psi_png(report))
            for feature, png in plots.details(report):
                image(f"drift-{feature}", png)
        self.body.children = children
        self.status.clear()
