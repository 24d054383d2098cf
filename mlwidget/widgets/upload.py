"""The upload panel: bulk predict, retrain, append and score from csv/json/xlsx/parquet files."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..api import METRICS, UPLOAD_ACTIONS
from ..display import fmt_num, size_text
from ..errors import BadRequest, PayloadTooLarge
from ._common import Status, button, error_text, esc, progress_bar
from .bigupload import ChunkedUpload, default_max_upload
from .render import table_html
from .runner import TaskRunner, cancel_button

if TYPE_CHECKING:
    import pandas as pd

RETRAIN_ON = {
    "file": "Retrain on this file (replaces the stored training data)",
    "stored": "Retrain on the stored data (the file is not used)",
}


#: The most a predictions CSV may have to be offered as a download link: the link carries the
#: whole file to the page (a data URI in the widget's HTML); bigger tables point at the REST API.
DOWNLOAD_MAX_BYTES = 10 * 1024 * 1024

ACTIONS = UPLOAD_ACTIONS
CLASSIFIER_METRICS = list(METRICS["classifier"])
REGRESSOR_METRICS = list(METRICS["regressor"])
DEFAULT_METRIC = "(model default)"


def metrics_for(kind: str | None) -> list[str]:
    if kind == "classifier":
        return [DEFAULT_METRIC, *CLASSIFIER_METRICS]
    if kind == "regressor":
        return [DEFAULT_METRIC, *REGRESSOR_METRICS]
    return [DEFAULT_METRIC, *CLASSIFIER_METRICS, *REGRESSOR_METRICS]


def download_link(df, filename: str, max_bytes: int) -> str:
    """An <a download> link carrying ``df`` as a CSV data URI (or a note when too big)."""
    from ..tables import to_bytes

    data = to_bytes(df, "csv")[0]  # text cells that would open as formulas are quoted
    if len(data) > max_bytes:
        return (
            f'<span class="mlwidget-download-too-big">The table is {size_text(len(data))}, too '
            "big to download through the widget; use the REST API with <code>_format=csv</code>."
            "</span>"
        )
    uri = "data:text/csv;base64," + base64.b64encode(data).decode("ascii")
    return (
        f'<a class="mlwidget-download" download="{esc(filename)}" href="{uri}" '
        f'style="color:#0d47a1;text-decoration:underline">Download {esc(filename)}</a>'
    )


class UploadForm(widgets.VBox):
    """Upload files, pick an action, press Run. Long actions run in the background."""

    def __init__(
        self,
        model: Any,
        runner: TaskRunner | None = None,
        on_change: Callable[[str], None] | None = None,
        max_upload_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.model = model
        self.runner = runner or TaskRunner()
        self.on_change = on_change
        # files travel to the kernel in slices, with progress (ChunkedUpload), up to this
        self.max_upload_bytes = max_upload_bytes or default_max_upload()
        self.table: pd.DataFrame | None = None  # the uploaded rows
        self.result: Any = None  # the last action's result (DataFrame for predict, else dict)

        self.upload = ChunkedUpload(
            max_bytes=self.max_upload_bytes,
            accept=".csv,.json,.xlsx,.parquet",
            multiple=True,
            description="Upload",
            tooltip="csv, json, xlsx or parquet; several files are concatenated",
        )
        self.upload.add_class("mlwidget-upload-file")
        self.upload.observe(self._on_upload, "value")
        self.upload.observe(self._on_refused, "error")
        self.file_info = widgets.HTML()
        self.file_info.add_class("mlwidget-upload-info")
        self.action = widgets.ToggleButtons(
            options=list(ACTIONS),
            value="predict",
            description="Action",
            tooltips=[
                "predict every row",
                "train on these rows (they become the training data)",
                "add these rows to the training data",
                "score the model on these rows",
            ],
        )
        self.action.add_class("mlwidget-upload-action")
        self.action.observe(lambda _: self._show_options(), "value")
        self.target = widgets.Dropdown(
            options=[], description="Target", tooltip="the column to predict"
        )
        self.target.add_class("mlwidget-upload-target")
        self.metric = widgets.Dropdown(
            options=metrics_for(getattr(model, "kind", None)),
            value=DEFAULT_METRIC,
            description="Metric",
            tooltip="any scikit-learn scorer name",
        )
        self.metric.add_class("mlwidget-upload-metric")
        self.retrain_on = widgets.RadioButtons(
            options=[(text, key) for key, text in RETRAIN_ON.items()],
            value="file",
            description="Train on",
            tooltip="which rows the retrain uses",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="auto"),
        )
        self.retrain_on.add_class("mlwidget-upload-retrain-on")
        self.retrain_on.observe(lambda _: self._show_options(), "value")
        self.proba = widgets.Checkbox(
            value=False,
            description="add class probabilities",
            tooltip="one column P(<class>) per class",
            indent=False,
        )
        self.proba.add_class("mlwidget-upload-proba")
        self.results: dict | None = None  # the last prediction's predict_results()
        self.run_button = button(
            "Run", "mlwidget-upload-run", "Run the action on the file", "primary"
        )
        self.run_button.on_click(lambda _: self.run())
        self.runner.register(self.run_button)
        self.progress = progress_bar("mlwidget-upload-progress")
        self.cancel_button = cancel_button(self.runner, "mlwidget-upload-cancel")
        self.status = Status("mlwidget-upload-status")
        self.output = widgets.HTML()
        self.output.add_class("mlwidget-upload-result")
        self.download = widgets.HTML()
        self.download.add_class("mlwidget-upload-download")
        hint = widgets.HTML(
            f'<small class="mlwidget-upload-hint">Files up to {size_text(self.max_upload_bytes)}, '
            "sent in slices with a progress bar. For bigger files use the REST API: "
            f"<code>POST …/mlhandler/{esc(model.name)}?_action=predict</code> "
            "(or retrain, append, score) on the Jupyter server.</small>"
        )
        super().__init__(
            children=[
                widgets.HBox([self.upload, self.file_info]),
                hint,
                self.action,
                self.retrain_on,
                self.target,
                self.metric,
                self.proba,
                widgets.HBox([self.run_button, self.progress, self.cancel_button]),
                self.status,
                self.output,
                self.download,
            ],
            **kwargs,
        )
        self.add_class("mlwidget-upload")
        self._show_options()

    # ---- the file ----------------------------------------------------------------------
    def rest_hint(self, action: str) -> str:
        return (
            f"POST the file to the REST endpoint instead: "
            f"<jupyter server>/mlhandler/{self.model.name}?_action={action}, e.g. "
            f"curl -H 'Authorization: token <token>' -F file=@<file> "
            f"'http://<server>/mlhandler/{self.model.name}?_action={action}'"
        )

    def _read(self) -> pd.DataFrame:
        """The uploaded files as one DataFrame (or raise an error with a readable message)."""
        import pandas as pd

        from ..tables import read_table

        files = list(self.upload.value or ())
        if not files:
            raise BadRequest("Choose a file first: csv, json, xlsx or parquet.")
        size = sum(int(f.get("size") or len(f["content"])) for f in files)
        if size > self.max_upload_bytes:
            raise PayloadTooLarge(
                f"The upload is {size_text(size)}, more than the "
                f"{size_text(self.max_upload_bytes)} this form accepts. "
                f"{self.rest_hint(self.action.value)}"
            )
        frames = [
            read_table(
                bytes(f["content"]), filename=f.get("name"), content_type=f.get("type") or None
            )
            for f in files
        ]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _on_refused(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.status.error(change["new"])

    def _on_upload(self, _change=None) -> None:
        self.table, self.result = None, None
        self.output.value = self.download.value = ""
        self.status.clear()
        files = list(self.upload.value or ())
        if not files:
            self.file_info.value = ""
            return
        names = ", ".join(f.get("name", "?") for f in files)
        try:
            self.table = self._read()
        except Exception as err:
            self.file_info.value = esc(names)
            self.status.error(err)
            return
        rows, cols = self.table.shape
        self.file_info.value = f"{esc(names)}: {rows} rows × {cols} columns"
        columns = [str(c) for c in self.table.columns]
        target = self.model.target_col
        self.target.options = columns
        if target in columns:
            self.target.value = target
        elif columns:
            from ..suggest import suggest_target

            self.target.value = suggest_target(self.table)

    def _show_options(self) -> None:
        action = self.action.value
        on_file = action == "retrain" and self.retrain_on.value == "file"
        self.retrain_on.layout.display = "" if action == "retrain" else "none"
        self.target.layout.display = "" if on_file else "none"
        self.metric.layout.display = "" if action in ("retrain", "score") else "none"
        classifier = getattr(self.model, "kind", None) == "classifier"
        self.proba.layout.display = "" if action == "predict" and classifier else "none"
        self.run_button.description = (
            "Retrain on this file"
            if on_file
            else "Retrain on the stored data"
            if action == "retrain"
            else "Run"
        )

    # ---- actions -----------------------------------------------------------------------
    def run(self) -> bool:
        """Run the chosen action in the background; :meth:`join` waits for it."""
        self.output.value = self.download.value = ""
        action = self.action.value
        stored = action == "retrain" and self.retrain_on.value == "stored"
        try:
            table = self.table if self.table is not None or stored else self._read()
        except Exception as err:
            self.status.error(err)
            return False
        self.table = table
        metric = None if self.metric.value == DEFAULT_METRIC else self.metric.value
        target = self.target.value or None
        proba = bool(self.proba.value) and self.proba.layout.display != "none"
        work = {
            "predict": lambda: self._predict(table, proba),
            "retrain": lambda: self._retrain(table, target, metric),
            "append": lambda: self.model.append(table),
            "score": lambda: self.runner.follow(self.model.start_job("score", table, metric)),
        }[action]
        labels = {
            "predict": "Predicting",
            "retrain": "Training",
            "append": "Appending",
            "score": "Scoring",
        }
        return self.runner.run(
            labels[action],
            work,
            lambda result: self._done(action, result),
            self.status,
            self.progress,
            cancel=self.cancel_button,
        )

    def _predict(self, table, proba: bool) -> dict:
        """``predict_results``: the input's columns, the prediction (and probabilities) added,
        with correct/error and the score when the file has the target."""
        return self.model.predict_results(table, proba=proba)

    def _retrain(self, table, target, metric) -> dict:
        if self.retrain_on.value == "stored":
            job = self.model.retrain(wait=False)
            result = dict(self.runner.follow(job))
            result["trained_on"] = "stored"
            return result
        job = self.model.retrain(table, target_col=target, wait=False)
        result = dict(self.runner.follow(job))
        result["trained_on"] = "file"
        if metric and table is not None:
            result["file_score"] = self.model.score(table, metric=metric)
        return result

    def _done(self, action: str, result: Any) -> None:
        self.result = result
        if action == "predict":
            self.results = result
            table = self.result = result["table"]
            added = [result["predicted"], *(result.get("proba") or [])]
            added += [c for c in ("correct", "error") if result.get("actual") and c in table]
            self.output.value = results_html(result) + table_html(table, mark=added)
            stem = os.path.splitext((self.upload.value or [{}])[0].get("name") or "data")[0]
            self.download.value = download_link(
                table, f"{stem}-predictions.csv", min(self.max_upload_bytes, DOWNLOAD_MAX_BYTES)
            )
            text = f"Predicted {len(table)} rows: see the column {result['predicted']!r}."
            score = result.get("score")
            if score:
                text += f" {score.get('metric')} against {result['actual']!r}: "
                text += f"{fmt_num(score.get('score'))}."
            self.status.show(text, "ok")
        elif action == "retrain":
            where = (
                "this file (it replaces the stored training data)"
                if result.get("trained_on") == "file"
                else "the stored data"
            )
            text = f"Trained {result.get('model', '')} on {where}, {result.get('rows', '?')} rows: "
            text += f"{result.get('metric', 'score')} = {_fmt(result.get('score'))}."
            if "file_score" in result:
                fs = result["file_score"]
                text += f" {fs.get('metric')} on this file = {_fmt(fs.get('score'))}."
            self.status.show(text, "ok")
        elif action == "append":
            self.status.show(
                f"Appended {result.get('appended')} rows; the training data now has "
                f"{result.get('rows')} rows. Retrain to use them.",
                "ok",
            )
        else:
            self.status.show(f"{result.get('metric')} = {_fmt(result.get('score'))}", "ok")
        if action in ("retrain", "append") and self.on_change is not None:
            try:
                self.on_change(action)
            except Exception as err:
                self.status.show(f"{self.status.text} (refresh failed: {error_text(err)})", "error")

    def join(self, timeout: float | None = 120) -> None:
        """Wait for the running action to finish (for tests and scripts)."""
        self.runner.join(timeout)


def _fmt(value: Any) -> str:
    return fmt_num(value)


def results_html(result: dict) -> str:
    """What the prediction table adds, and the score when the file has the target."""
    added = [result["predicted"], *(result.get("proba") or [])]
    parts = [
        '<div class="mlwidget-results-note">New columns (highlighted): '
        + ", ".join(f"<b>{esc(c)}</b>" for c in added)
    ]
    score = result.get("score")
    if result.get("actual"):
        check = "correct" if "correct" in result["table"] else "error"
        parts.append(
            f"; <b>{check}</b> compares them with the file's <b>{esc(result['actual'])}</b>"
        )
    parts.append(".</div>")
    if score:
        parts.append(
            '<div class="mlwidget-results-score" style="font-size:1.1em">'
            f"{esc(score.get('metric'))} on these rows: "
            f'<b class="mlwidget-file-score">{esc(fmt_num(score.get("score")))}</b></div>'
        )
    return "".join(parts)
