"""The composed UI: Predict, Upload, Editor, Summary, History and Monitor tabs over one model.

Each tab's form is built the first time the tab is selected (the selected tab at once): the
Summary's plots, which predict over the stored rows, and the Editor's estimator lists cost
nothing until someone looks at them.
"""

from __future__ import annotations

import os
from typing import Any

import ipywidgets as widgets

from ._common import error_text, esc
from .editor import EditorForm
from .history import HistoryPanel
from .monitor import MonitorPanel
from .predict import PredictForm
from .runner import TaskRunner
from .summary import SummaryPanel
from .upload import UploadForm

TITLES = ("Predict", "Upload", "Editor", "Summary", "History", "Monitor")
PLACEHOLDER = '<span class="mlwidget-tab-loading" style="color:#444">Loading…</span>'


class MLApp(widgets.VBox):
    """All forms of one model. Long tasks share one background runner; ``wait()`` joins it.

    ``tabs.children`` are fixed panes (``panes[i]``); a pane holds a placeholder until its tab
    is first selected, then its form. ``app.predict``, ``.upload``, ``.editor`` and ``.summary``
    are the forms; reading one from code builds it too (into its pane), as opening its tab would.
    """

    def __init__(self, model: Any, max_upload_bytes: int | None = None, **kwargs: Any) -> None:
        self.model = model
        self.runner = TaskRunner()
        self.max_upload_bytes = max_upload_bytes
        self._forms: dict[str, widgets.Widget] = {}  # the forms built so far, by tab title
        self.panes = []
        for title in TITLES:
            pane = widgets.VBox([widgets.HTML(PLACEHOLDER)])
            pane.add_class("mlwidget-tab")
            pane.add_class(f"mlwidget-tab-{title.lower()}")
            self.panes.append(pane)
        self.tabs = widgets.Tab(children=self.panes, titles=TITLES)
        self.tabs.add_class("mlwidget-tabs")
        self._open(self.tabs.selected_index or 0)
        self.tabs.observe(self._on_tab, "selected_index")
        self.header = widgets.HTML()
        self.header.add_class("mlwidget-header")
        self._show_header()
        super().__init__(children=[self.header, self.tabs], **kwargs)
        self.add_class("mlwidget-app")

    def _show_header(self) -> None:
        """The header names the model shown, what it predicts and its REST URL."""
        self.header.value = header_html(self.model)

    # ---- the forms, built on first use ---------------------------------------------------
    def _build(self, title: str) -> widgets.Widget:
        if title == "Predict":
            return PredictForm(self.model)
        if title == "Upload":
            return UploadForm(
                self.model,
                runner=self.runner,
                on_change=self._changed,
                max_upload_bytes=self.max_upload_bytes,
            )
        if title == "Editor":
            return EditorForm(self.model, runner=self.runner, on_change=self._changed)
        if title == "History":
            return HistoryPanel(self.model, on_change=self._changed)
        if title == "Monitor":
            return MonitorPanel(self.model)
        return SummaryPanel(self.model)

    def _form(self, title: str) -> widgets.Widget:
        """The form of tab ``title``, built (from the model as it is now) if it is not yet."""
        form = self._forms.get(title)
        if form is None:
            known = len(self.runner.buttons)
            form = self._forms[title] = self._build(title)
            if self.runner.busy:  # opened while a task runs: its buttons wait like the others
                for b in self.runner.buttons[known:]:
                    b.disabled = True
            self.panes[TITLES.index(title)].children = [form]
        return form

    def _open(self, index: int) -> bool:
        """Build tab ``index``'s form if it is not yet; True if it was built now."""
        title = TITLES[index]
        if title in self._forms:
            return False
        self._form(title)
        return True

    def built(self, title: str) -> bool:
        """Whether the form of tab ``title`` has been built (its tab opened, or read from code)."""
        return title in self._forms

    @property
    def predict(self) -> PredictForm:
        return self._form("Predict")

    @property
    def upload(self) -> UploadForm:
        return self._form("Upload")

    @property
    def editor(self) -> EditorForm:
        return self._form("Editor")

    @property
    def summary(self) -> SummaryPanel:
        return self._form("Summary")

    @property
    def history(self) -> HistoryPanel:
        return self._form("History")

    @property
    def monitor(self) -> MonitorPanel:
        return self._form("Monitor")

    # ---- keeping them current ------------------------------------------------------------
    def _changed(self, what: str) -> None:
        """After a configure, retrain or append: show the new state in the forms built so far
        (the others read the model when they are built)."""
        self._show_header()
        forms = self._forms
        if "Summary" in forms:
            forms["Summary"].refresh()
        if what in ("retrain", "append", "rollback") and "Predict" in forms:
            forms["Predict"].refresh()
        if what == "retrain" and "History" in forms:  # (a rollback comes from History itself)
            forms["History"].refresh()
        if what != "configure" and "Editor" in forms:
            forms["Editor"].refresh()

    def _on_tab(self, change) -> None:
        index = change["new"]
        if index is None:
            return
        if self._open(index):  # first visit: the new form has just read the model
            return
        # Another process (REST, another notebook) may have changed the model: re-read it when
        # the user comes to a tab that shows its state. Never while our own task is running.
        if self.runner.busy:
            return
        self._show_header()
        title = TITLES[index]
        if title == "Summary":
            self.summary.refresh()
        elif title == "Predict":
            self.predict.refresh()
        elif title == "History":
            self.history.refresh()
        elif title == "Monitor":
            self.monitor.refresh()
        elif title == "Editor" and not self.editor.changes():
            self.editor.refresh()  # but never over edits the user has not applied yet

    def refresh(self) -> None:
        """Re-read the model in every form built so far (the others are built fresh)."""
        self._show_header()
        for title in ("Predict", "Editor", "Summary", "History", "Monitor"):
            if title in self._forms:
                self._forms[title].refresh()

    def wait(self, timeout: float | None = 120) -> None:
        """Wait until a background task (training, bulk prediction) has finished."""
        self.runner.join(timeout)


def header_html(model: Any) -> str:
    """The app's header: ``Model: titanic``, then what it is (``predicts Survived (classifier:
    LogisticRegression), version 2``, or that it is not trained yet) and where the REST API
    and the model page serve it (``…/mlhandler/titanic``: the path under the server's base
    URL, which a kernel does not know; JupyterHub's prefix when the kernel has it)."""
    name = esc(model.name)
    try:
        snap = model.snapshot()
        fitted, options = snap.fitted, snap.options
        target = options.get("target_col") or fitted.get("target_col")
        class_ = options.get("class") or fitted.get("model")
        if fitted.get("model"):
            what = f"predicts {target} ({fitted.get('kind') or 'model'}: {class_})"
            version = fitted.get("version")
            what += f", version {version}" if version else ""
        else:
            chosen = [f"class {class_}"] * bool(class_) + [f"target {target}"] * bool(target)
            what = "not trained yet" + (f" ({', '.join(chosen)})" if chosen else "")
    except Exception as err:  # the model was removed meanwhile: say so, in place of its kind
        what = error_text(err)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "").rstrip("/") or "…"
    return (
        f'<h3 class="mlwidget-title" style="margin-bottom:2px">Model: {name}</h3>'
        f'<div class="mlwidget-subtitle" style="color:#444;margin-bottom:6px">'
        f'<span class="mlwidget-model-kind">{esc(what)}</span> · REST API and model page: '
        f'<code class="mlwidget-rest-url">{esc(prefix)}/mlhandler/{name}</code></div>'
    )


def build_app(model: Any, max_upload_bytes: int | None = None) -> MLApp:
    """The widget UI of ``model`` (what ``MLModel.widget()`` returns)."""
    return MLApp(model, max_upload_bytes=max_upload_bytes)
