"""The dashboard over the whole store: pick a model, or make a new one from a file, no code.

``Dashboard(model=None, store=None)``: a model picker (every model of the store), a "New model"
button, and the picked model's :class:`~mlwidget.widgets.MLApp` below them. "New model" opens
:class:`NewModelForm`: upload a file -> its first rows -> the column to predict (suggested) ->
the kind of problem, and why -> the estimator (a sensible default per kind) -> a name ->
Create, which trains as a job (stage, progress, elapsed time, Cancel) and then shows the model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..errors import BadRequest, PayloadTooLarge
from ..store import RESERVED, Store
from ._common import (
    Status,
    TaskRunner,
    button,
    cancel_button,
    esc,
    fmt_num,
    progress_bar,
    table_html,
)
from .app import MLApp
from .upload import DEFAULT_MAX_UPLOAD, _mb

SUPERVISED = ("classifier", "regressor")
NO_MODELS = "(no models yet)"


def model_name_for(filename: str, taken: list[str]) -> str:
    """A model name from a file name (letters, digits, -, _, .), not one of ``taken`` nor one
    that differs from one of them only by case (``Titanic.csv`` beside ``titanic``)."""
    stem = os.path.splitext(os.path.basename(filename or ""))[0]
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.")[:100] or "model"
    if base in RESERVED:
        base = f"model-{base}"
    name, n, folded = base, 2, {t.rstrip(".").casefold() for t in taken}
    while name.casefold() in folded:
        name, n = f"{base}-{n}", n + 1
    return name


class NewModelForm(widgets.VBox):
    """Upload a file, check its first rows, pick the target (suggested), the kind (inferred,
    with the reason) and the class (the kind's default), name it, Create. ``on_created(model)``
    is called with the trained :class:`~mlwidget.MLModel`."""

    def __init__(
        self,
        store: Any = None,
        runner: TaskRunner | None = None,
        on_created: Callable[[Any], None] | None = None,
        max_upload_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        from ..estimators import list_estimators

        self._list_estimators = list_estimators
        self.store = store
        self.runner = runner or TaskRunner()
        self.on_created = on_created
        self.max_upload_bytes = max_upload_bytes or DEFAULT_MAX_UPLOAD
        self.table = None  # the uploaded rows (DataFrame)
        self.inspected: dict | None = None  # suggest.inspect() of the table
        self.model: Any = None  # the model created last
        self._loading = False

        self.upload = widgets.FileUpload(
            accept=".csv,.json,.xlsx,.parquet",
            multiple=False,
            description="Data file",
            tooltip="csv, json, xlsx or parquet: the rows to learn from, with the column to predict",
        )
        self.upload.add_class("mlwidget-new-file")
        self.upload.observe(self._on_upload, "value")
        self.file_info = widgets.HTML()
        self.file_info.add_class("mlwidget-new-info")
        self.preview = widgets.HTML()
        self.preview.add_class("mlwidget-new-preview")
        wide = {"description_width": "150px"}
        self.target = widgets.Dropdown(
            options=[], description="Column to predict", tooltip="the target column", style=wide
        )
        self.target.add_class("mlwidget-new-target")
        self.target.observe(self._on_target, "value")
        self.kind = widgets.ToggleButtons(
            options=list(SUPERVISED),
            description="Kind",
            tooltips=["predict one of a few values (a class)", "predict a number (an amount)"],
            style=wide,
        )
        self.kind.add_class("mlwidget-new-kind")
        self.kind.observe(self._on_kind, "value")
        self.reason = widgets.HTML()
        self.reason.add_class("mlwidget-new-reason")
        self.cls = widgets.Dropdown(
            description="Estimator", tooltip="the scikit-learn estimator class", style=wide
        )
        self.cls.add_class("mlwidget-new-class")
        self.name = widgets.Text(
            description="Model name",
            placeholder="letters, digits, - _ .",
            tooltip="the model's name in the store and in the REST API's URL",
            style=wide,
        )
        self.name.add_class("mlwidget-new-name")
        self.create_button = button(
            "Create and train", "mlwidget-new-create", "Create the model and train it", "primary"
        )
        self.create_button.on_click(lambda _: self.create())
        self.runner.register(self.create_button)
        self.progress = progress_bar("mlwidget-new-progress")
        self.cancel_button = cancel_button(self.runner, "mlwidget-new-cancel")
        self.status = Status("mlwidget-new-status")
        self.details = widgets.VBox(
            [self.preview, self.target, self.kind, self.reason, self.cls, self.name]
        )
        self.details.layout.display = "none"  # until a file is read
        super().__init__(
            children=[
                widgets.HTML("<b>New model</b>: upload the rows to learn from."),
                widgets.HBox([self.upload, self.file_info]),
                self.details,
                widgets.HBox([self.create_button, self.progress, self.cancel_button]),
                self.status,
            ],
            **kwargs,
        )
        self.add_class("mlwidget-new")

    # ---- the file ----------------------------------------------------------------------
    def _read(self):
        from ..tables import read_table

        files = list(self.upload.value or ())
        if not files:
            raise BadRequest("Choose a file first: csv, json, xlsx or parquet.")
        f = files[0]
        size = int(f.get("size") or len(f["content"]))
        if size > self.max_upload_bytes:
            raise PayloadTooLarge(
                f"The file is {_mb(size)}, more than the {_mb(self.max_upload_bytes)} the widget "
                "channel allows. Create the model over REST instead: PUT "
                "<server>/mlhandler/<name>?_model&class=...&target_col=..., then POST the file "
                "to <server>/mlhandler/<name>?_action=retrain."
            )
        return read_table(
            bytes(f["content"]), filename=f.get("name"), content_type=f.get("type") or None
        )

    def _on_upload(self, _change=None) -> None:
        from ..model import list_models
        from ..suggest import inspect

        self.table, self.inspected = None, None
        self.status.clear()
        self.details.layout.display = "none"
        files = list(self.upload.value or ())
        if not files:
            self.file_info.value = ""
            return
        filename = files[0].get("name") or "data"
        try:
            table = self._read()
            found = inspect(table)
        except Exception as err:
            self.file_info.value = esc(filename)
            self.status.error(err)
            return
        self.table, self.inspected = table, found
        rows, cols = table.shape
        self.file_info.value = f"{esc(filename)}: {rows} rows × {cols} columns"
        self.preview.value = preview_html(found, table)
        self._loading = True
        try:
            self.target.options = [c["name"] for c in found["columns"]]
            self.target.value = found["target"]
        finally:
            self._loading = False
        self._show_kind(found["kind"], found["reason"])
        try:
            taken = list_models(self.store)
        except Exception:
            taken = []
        self.name.value = model_name_for(filename, taken)
        self.details.layout.display = ""

    def _on_target(self, change) -> None:
        if self._loading or self.table is None or change["new"] is None:
            return
        from ..suggest import infer_kind

        y = self.table[self._column(change["new"])].rename(change["new"])
        self._show_kind(*infer_kind(y))

    def _column(self, name: str):
        return next(c for c in self.table.columns if str(c) == name)

    def _show_kind(self, kind: str, reason: str) -> None:
        self.reason.value = (
            f'<div class="mlwidget-new-why" style="margin-left:156px;color:#444">{esc(reason)}.'
            "</div>"
        )
        if self.kind.value == kind:
            self._fill_classes(kind)
        else:
            self.kind.value = kind  # -> _on_kind fills the classes

    def _on_kind(self, change) -> None:
        self._fill_classes(change["new"])

    def _fill_classes(self, kind: str) -> None:
        """The kind's estimators, its sensible default preselected (never the first name)."""
        from ..suggest import default_class

        names = self._list_estimators(kind)
        default = default_class(kind)
        self.cls.options = names
        self.cls.value = default if default in names else (names[0] if names else None)

    # ---- creating ----------------------------------------------------------------------
    def create(self) -> bool:
        """Create the model and train it on the file as a job (Cancel stops it; a model
        whose training failed or was cancelled is not kept). False if nothing started."""
        if self.table is None:
            self.status.error("Choose a file first: csv, json, xlsx or parquet.")
            return False
        name = self.name.value.strip()
        try:
            # the core's refusals: names the server cannot serve at (v2), a model of that name,
            # or one whose name differs only by case or a trailing dot (MLModel(create=True)
            # says the same if one appears before the model is made)
            store = self.store if isinstance(self.store, Store) else Store(self.store)
            store.check_new(name)
        except Exception as err:
            self.status.error(err)
            return False
        options = {"class": self.cls.value, "target_col": self.target.value}
        table, kind = self.table, self.kind.value
        return self.runner.run(
            f"Training {name}",
            lambda: self._create(name, options, table),
            lambda result: self._created(result, kind),
            self.status,
            self.progress,
            cancel=self.cancel_button,
        )

    def _create(self, name: str, options: dict, table) -> tuple[Any, dict]:
        """On the runner's thread: create the model (options only), then train it on the
        table as a job this form follows. A failure removes the half-made model."""
        from ..model import MLModel

        model = MLModel(name, store=self.store, model=options, create=True)
        try:
            job = model.retrain(table, target_col=options["target_col"], wait=False)
            result = self.runner.follow(job)
        except BaseException:
            try:
                model.destroy()
            except Exception:  # pragma: no cover - keep the training error
                pass
            raise
        return model, dict(result or {})

    def _created(self, result: tuple[Any, dict], kind: str) -> None:
        model, fit = result
        self.model = model
        text = (
            f"Created {model.name}: {fit.get('model', '')} predicting {model.target_col} "
            f"({kind}), trained on {fit.get('rows', '?')} rows: "
            f"{fit.get('metric', 'score')} = {fmt_num(fit.get('score'))} on those rows"
        )
        cv = fit.get("cv_score") or {}
        if cv.get("value") is not None:
            text += f", {fmt_num(cv['value'])} on rows it did not see ({cv.get('on', 'cv')})"
        self.status.show(text + ".", "ok")
        if self.on_created is not None:
            self.on_created(model)

    def join(self, timeout: float | None = 120) -> None:
        self.runner.join(timeout)


def preview_html(found: dict, table) -> str:
    """The file's columns (kind, distinct values, missing) and its first rows."""
    kinds = " · ".join(
        f"<b>{esc(c['name'])}</b> {esc(c['dtype'])}"
        + (f", {c['missing']} missing" if c["missing"] else "")
        for c in found["columns"]
    )
    dates = [c["name"] for c in found["columns"] if c["dtype"] == "date"]
    warn = (
        '<div class="mlwidget-new-dates" style="color:#e65100">'
        f"{esc(', '.join(dates))}: dates. The model reads each date as a category (a date it "
        "has not seen counts as unknown); the Predict tab offers a date picker.</div>"
        if dates
        else ""
    )
    return f'<div class="mlwidget-new-columns"><small>{kinds}</small></div>{warn}' + table_html(
        table, max_rows=10, css="mlwidget-table mlwidget-new-table"
    )


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
