"""The dashboard over the whole store: pick a model, or make a new one from a file, no code.

``Dashboard(model=None, store=None)``: a model picker (every model of the store), a "New model"
button (:class:`~mlwidget.widgets.newmodel.NewModelForm`), and the picked model's
:class:`~mlwidget.widgets.MLApp` below them.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..names import suggested_name
from ._common import Status, button
from .app import MLApp
from .newmodel import NewModelForm

__all__ = ["Dashboard", "NewModelForm", "model_name_for"]

NO_MODELS = "(no models yet)"


def model_name_for(filename: str, taken: list[str]) -> str:
    """The name the New model form offers for ``filename`` beside the models ``taken``:
    :func:`mlwidget.names.suggested_name` (kept under this name for its callers)."""
    return suggested_name(filename, taken=taken)


class Dashboard(widgets.VBox):
    """Every model of a store: a picker, a "New model" form, and the picked model's app."""

    def __init__(
        self,
        model: Any = None,
        store: Any = None,
        max_upload_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        if store is None and model is not None:
            store = model.store
        self.store = store
        self.max_upload_bytes = max_upload_bytes
        self.app: MLApp | None = None
        self._switching = False
        self.picker = widgets.Dropdown(
            description="Model", tooltip="the models in the store; pick one to open it"
        )
        self.picker.add_class("mlwidget-picker")
        self.picker.observe(self._on_pick, "value")
        self.new_button = button(
            "New model", "mlwidget-new-button", "Make a model from a data file, no code"
        )
        self.new_button.on_click(lambda _: self.toggle_new())
        self.new_form = NewModelForm(
            store=store, on_created=self._on_created, max_upload_bytes=max_upload_bytes
        )
        self.new_form.layout.display = "none"
        self.new_form.layout.border = "1px solid #ccc"
        self.new_form.layout.padding = "8px"
        self.body = widgets.VBox()
        self.body.add_class("mlwidget-dashboard-body")
        self.status = Status("mlwidget-dashboard-status")
        super().__init__(
            children=[
                widgets.HBox([self.picker, self.new_button]),
                self.new_form,
                self.status,
                self.body,
            ],
            **kwargs,
        )
        self.add_class("mlwidget-dashboard")
        self.refresh_models(model.name if model is not None else None)
        if model is not None:
            self._show(model)
        elif self.picker.value not in (None, NO_MODELS):
            self.open_model(self.picker.value)
        else:
            self.toggle_new(True)

    def models(self) -> list[str]:
        from ..model import list_models

        return list_models(self.store)

    def refresh_models(self, select: str | None = None) -> None:
        """Re-read the store's model names (and select ``select``)."""
        names = self.models()
        self._switching = True
        try:
            self.picker.options = names or [NO_MODELS]
            self.picker.disabled = not names
            current = select if select in names else self.picker.value
            self.picker.value = current if current in names else (names[0] if names else NO_MODELS)
        finally:
            self._switching = False

    def toggle_new(self, show: bool | None = None) -> None:
        show = self.new_form.layout.display == "none" if show is None else show
        self.new_form.layout.display = "" if show else "none"
        self.new_button.button_style = "info" if show else ""

    def open_model(self, name: str) -> MLApp | None:
        """Show model ``name``'s forms (an error line if it cannot be opened)."""
        from ..model import MLModel

        self.status.clear()
        try:
            model = MLModel.open(name, store=self.store)
        except Exception as err:
            self.status.error(err)
            return None
        return self._show(model)

    def _show(self, model: Any) -> MLApp:
        self.app = MLApp(model, max_upload_bytes=self.max_upload_bytes)
        self.body.children = [self.app]
        return self.app

    def _on_pick(self, change) -> None:
        if self._switching or change["new"] in (None, NO_MODELS):
            return
        if self.app is not None and self.app.model.name == change["new"]:
            return
        self.open_model(change["new"])

    def _on_created(self, model: Any) -> None:
        self.refresh_models(model.name)
        self._show(model)
        self.toggle_new(False)
        self.status.show(self.new_form.status.text, "ok")

    def wait(self, timeout: float | None = 120) -> None:
        """Wait for the New model form's and the current app's running task (if any)."""
        self.new_form.join(timeout)
        if self.app is not None:
            self.app.wait(timeout)
