"""The composed UI: Predict, Upload, Editor and Summary tabs over one model."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ._common import Runner, esc
from .editor import EditorForm
from .predict import PredictForm
from .summary import SummaryPanel
from .upload import UploadForm

TITLES = ("Predict", "Upload", "Editor", "Summary")


class MLApp(widgets.VBox):
    """All forms of one model. Long tasks share one background runner; ``wait()`` joins it."""

    def __init__(self, model: Any, max_upload_bytes: int | None = None, **kwargs: Any) -> None:
        self.model = model
        self.runner = Runner()
        self.predict = PredictForm(model)
        self.upload = UploadForm(
            model, runner=self.runner, on_change=self._changed, max_upload_bytes=max_upload_bytes
        )
        self.editor = EditorForm(model, runner=self.runner, on_change=self._changed)
        self.summary = SummaryPanel(model)
        self.tabs = widgets.Tab(
            children=[self.predict, self.upload, self.editor, self.summary], titles=TITLES
        )
        self.tabs.add_class("mlwidget-tabs")
        self.tabs.observe(self._on_tab, "selected_index")
        title = widgets.HTML(f'<h3 class="mlwidget-title">Model: {esc(model.name)}</h3>')
        super().__init__(children=[title, self.tabs], **kwargs)
        self.add_class("mlwidget-app")

    def _changed(self, what: str) -> None:
        """After a configure, retrain or append: show the new state everywhere."""
        self.summary.refresh()
        if what in ("retrain", "append"):
            self.predict.refresh()
        if what != "configure":
            self.editor.refresh()

    def _on_tab(self, change) -> None:
        # Another process (REST, another notebook) may have changed the model: re-read it when
        # the user comes to a tab that shows its state. Never while our own task is running.
        if self.runner.busy:
            return
        if change["new"] == TITLES.index("Summary"):
            self.summary.refresh()
        elif change["new"] == TITLES.index("Predict"):
            self.predict.refresh()
        elif change["new"] == TITLES.index("Editor") and not self.editor.changes():
            self.editor.refresh()  # but never over edits the user has not applied yet

    def refresh(self) -> None:
        """Re-read the model in every form."""
        self.predict.refresh()
        self.editor.refresh()
        self.summary.refresh()

    def wait(self, timeout: float | None = 120) -> None:
        """Wait until a background task (training, bulk prediction) has finished."""
        self.runner.join(timeout)


def build_app(model: Any, max_upload_bytes: int | None = None) -> MLApp:
    """The widget UI of ``model`` (what ``MLModel.widget()`` returns)."""
    return MLApp(model, max_upload_bytes=max_upload_bytes)
