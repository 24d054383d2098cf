"""The dashboard's New model form: upload a file -> its first rows -> the column to predict
(suggested) -> the kind of problem, and why -> the estimator (a sensible default per kind) ->
a name (``mlwidget.names.suggested_name``) -> Create, which trains as a job (stage, progress,
elapsed time, Cancel)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..display import fmt_num, size_text
from ..errors import BadRequest, PayloadTooLarge
from ..names import suggested_name
from ..store import Store
from ._common import Status, button, esc, progress_bar
from .bigupload import ChunkedUpload, default_max_upload
from .render import table_html
from .runner import TaskRunner, cancel_button

if TYPE_CHECKING:
    import pandas as pd

SUPERVISED = ("classifier", "regressor")


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
        self.max_upload_bytes = max_upload_bytes or default_max_upload()
        self.table: pd.DataFrame | None = None  # the uploaded rows
        self.inspected: dict | None = None  # suggest.inspect() of the table
        self.model: Any = None  # the model created last
        self._loading = False

        # the file travels in slices with a progress bar (ChunkedUpload): up to max_upload_bytes
        self.upload = ChunkedUpload(
            max_bytes=self.max_upload_bytes,
            accept=".csv,.json,.xlsx,.parquet",
            multiple=False,
            description="Data file",
            tooltip="csv, json, xlsx or parquet: the rows to learn from, with the column to predict",
        )
        self.upload.add_class("mlwidget-new-file")
        self.upload.observe(self._on_upload, "value")
        self.upload.observe(self._on_refused, "error")
        self.file_info = widgets.HTML()
        self.file_info.add_class("mlwidget-new-info")
        self.preview = widgets.HTML()
        self.preview.add_class("mlwidget-new-preview")
        wide = {"description_width": "150px"}
        self.target = widgets.Dropdown(
            options=[], description="Column to predict", tooltip="the target column", style=wide
        )
        self.target.add_class("mlwidget-new-target")
        self.target.layout.width = "480px"  # long column and class names are not cut
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
        self.cls.layout.width = "480px"
        self.name = widgets.Text(
            description="Model name",
            placeholder="letters, digits, - _ .",
            tooltip="the model's name in the store and in the REST API's URL",
            style=wide,
        )
        self.name.add_class("mlwidget-new-name")
        self.name.layout.width = "480px"
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
    def _read(self) -> pd.DataFrame:
        from ..tables import read_table

        files = list(self.upload.value or ())
        if not files:
            raise BadRequest("Choose a file first: csv, json, xlsx or parquet.")
        f = files[0]
        size = int(f.get("size") or len(f["content"]))
        if size > self.max_upload_bytes:
            raise PayloadTooLarge(
                f"The file is {size_text(size)}, more than the "
                f"{size_text(self.max_upload_bytes)} this form accepts. Create the model "
                "over REST instead: PUT <server>/mlhandler/<name>?_model&class=...&target_col=..., "
                "then POST the file to <server>/mlhandler/<name>?_action=retrain."
            )
        return read_table(
            bytes(f["content"]), filename=f.get("name"), content_type=f.get("type") or None
        )

    def _store(self) -> Store:
        return self.store if isinstance(self.store, Store) else Store(self.store)

    def _on_upload(self, _change: Any = None) -> None:
        from ..suggest import inspect

        self.table, self.inspected = None, None
        self.status.clear()
        self.details.layout.display = "none"
        files = list(self.upload.value or ())
        if not files:
            self.file_info.value = ""
            return
        filename = files[0].get("name") or "data"
        self.status.show(f"Reading {filename}…", "busy")
        try:
            table = self._read()
            found = inspect(table)
        except Exception as err:
            self.file_info.value = esc(filename)
            self.status.error(err)
            return
        self.table, self.inspected = table, found
        self.status.clear()
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
        self.name.value = suggested_name(filename, self._store())
        self.details.layout.display = ""

    def _on_refused(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.status.error(change["new"])

    def _on_target(self, change: dict[str, Any]) -> None:
        table = self.table
        if self._loading or table is None or change["new"] is None:
            return
        from ..suggest import infer_kind

        column = next(c for c in table.columns if str(c) == change["new"])
        self._show_kind(*infer_kind(table[column].rename(change["new"])))

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
            self._store().check_new(name)
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
    dates = found.get("dates") or []
    warn = (
        '<div class="mlwidget-new-dates">'
        f"{esc(', '.join(dates))}: dates. The model reads each as numbers (year, month, day, "
        "weekday, ordinal), not as categories; the Predict tab offers a date picker. "
        "Turn it off with the option dates=[] (Settings, or configure(dates=[])).</div>"
        if dates
        else ""
    )
    return f'<div class="mlwidget-new-columns"><small>{kinds}</small></div>{warn}' + table_html(
        table, max_rows=10, css="mlwidget-table mlwidget-new-table"
    )
