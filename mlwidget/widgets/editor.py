"""The model editor: estimator class, its hyper-parameters, the column options; apply, retrain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..display import fmt_num
from ..estimators import KINDS
from ..options import LIST_OPTIONS as COLUMN_OPTIONS
from ._common import Status, button, error_text, progress_bar
from .render import tags
from .runner import TaskRunner, cancel_button

COLUMN_HELP = {
    "include": "the only feature columns to use (wins over exclude)",
    "exclude": "columns to drop",
    "cats": "columns forced categorical (one-hot encoded)",
    "nums": "columns forced numeric (scaled)",
}


def as_text(value: Any) -> str:
    """How a parameter value is written in a text box (and read back by the core's parser)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


FALLBACK_CLASSES = {
    "classifier": "RandomForestClassifier",
    "regressor": "RandomForestRegressor",
    "clusterer": "KMeans",
    "transformer": "PCA",
}


def default_class(kind: str) -> str | None:
    """The class to preselect for ``kind``: :func:`mlwidget.suggest.default_class` (a sensible
    default, never the first name alphabetically)."""
    try:
        from ..suggest import default_class as suggested
    except ImportError:  # the core's suggestions are not installed: the same defaults
        return FALLBACK_CLASSES.get(kind)
    try:
        return suggested(kind)
    except Exception:
        return FALLBACK_CLASSES.get(kind)


def param_input(
    spec: dict, value: Any, help_text: str = "", width: int = 150
) -> widgets.ValueWidget:
    """An input for one estimator parameter, typed by its declared constraints, showing the
    parameter's full name (``width`` px) and its docstring's words as the tooltip.

    Number boxes only where the type is unambiguous (an int parameter holding an int, a float one
    holding a float); booleans are checkboxes; everything else is a text box the core parses by
    the same rules as a URL.
    """
    name, kind = spec["name"], spec["type"]
    tip = f"{name}: {help_text}" if help_text else f"{name}: {kind}"
    common = {
        "description": name,
        "tooltip": f"{tip} (default {as_text(spec['default'])})",
        "style": {"description_width": f"{width}px"},
        "layout": widgets.Layout(width=f"{width + 220}px"),
    }
    choices = spec.get("choices") or []
    if isinstance(value, np.bool_):
        value = bool(value)
    if isinstance(value, bool) and (kind in ("bool", "other") or isinstance(spec["default"], bool)):
        w = widgets.Checkbox(value=value, indent=True, **common)
    elif kind == "choice" and value in choices:
        # Options hold the text the core parses ("none", "balanced"): a Dropdown whose value
        # is None would show no selection at all.
        options = list(dict.fromkeys(as_text(c) for c in choices))
        w = widgets.Dropdown(options=options, value=as_text(value), **common)
    elif kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        w = widgets.IntText(value=value, **common)
    elif kind == "float" and isinstance(value, float):
        w = widgets.FloatText(value=value, **common)
    else:
        w = widgets.Text(value=as_text(value), placeholder=as_text(spec["default"]), **common)
    w.add_class("mlwidget-param")
    w.add_class(f"mlwidget-param-{name}")
    return w


def visible_specs(cls: type, specs: list[dict], values: dict) -> list[dict]:
    """The parameters to offer: deprecated ones left out (unless the model sets one), and
    deprecated or transitional choices left out of the others (unless it is the value)."""
    from ..paramdocs import hidden_choices, is_deprecated

    out = []
    for spec in specs:
        name, default = spec["name"], spec["default"]
        value = values.get(name, default)
        if is_deprecated(cls, name, default) and value == default:
            continue
        if spec.get("choices"):
            hidden = hidden_choices(cls, name) - {value}
            spec = {**spec, "choices": [c for c in spec["choices"] if c not in hidden]}
        out.append(spec)
    return out


def suggest_kind(model: Any) -> str:
    """The estimator kind to offer: the model's own, else what the target column suggests
    (:func:`mlwidget.suggest.infer_kind`), else "clusterer" when there is no target."""
    kind = getattr(model, "kind", None)
    if kind in KINDS:
        return kind
    target = getattr(model, "target_col", None)
    if not target:
        return "clusterer"
    try:
        from ..suggest import infer_kind

        return infer_kind(model.data()[target])[0]
    except Exception:
        return "classifier"


class EditorForm(widgets.VBox):
    """Pick the estimator and its parameters and the column options. Apply stages; Retrain trains."""

    def __init__(
        self,
        model: Any,
        runner: TaskRunner | None = None,
        on_change: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        from ..estimators import list_estimators

        self._list_estimators = list_estimators
        self.model = model
        self.runner = runner or TaskRunner()
        self.on_change = on_change
        self.params: dict[str, widgets.ValueWidget] = {}
        self._initial: dict[str, Any] = {}
        self._loaded_class: str | None = None
        self._loading = False

        self.kind = widgets.ToggleButtons(
            options=list(KINDS), description="Kind", tooltip="which estimators to offer"
        )
        self.kind.add_class("mlwidget-editor-kind")
        self.kind.observe(self._on_kind, "value")
        self.cls = widgets.Dropdown(description="Class", tooltip="the scikit-learn estimator class")
        self.cls.add_class("mlwidget-editor-class")
        self.cls.observe(self._on_class, "value")
        self.params_box = widgets.VBox()
        self.params_box.add_class("mlwidget-editor-params")
        self.target = widgets.Dropdown(description="target_col", tooltip="the column to predict")
        self.target.add_class("mlwidget-editor-target")
        self.columns: dict[str, widgets.TagsInput] = {}
        for name in COLUMN_OPTIONS:
            w = widgets.TagsInput(
                allowed_tags=[], allow_duplicates=False, tooltip=COLUMN_HELP[name]
            )
            w.add_class(f"mlwidget-editor-{name}")
            self.columns[name] = w
        columns_box = widgets.VBox([self._column_row(n, w) for n, w in self.columns.items()])
        self.apply_button = button(
            "Apply",
            "mlwidget-editor-apply",
            "Stage these settings (the fitted model keeps serving)",
        )
        self.apply_button.on_click(lambda _: self.apply())
        self.retrain_button = button(
            "Retrain", "mlwidget-editor-retrain", "Apply and train on the stored data", "primary"
        )
        self.retrain_button.on_click(lambda _: self.retrain())
        self.runner.register(self.apply_button, self.retrain_button)
        self.progress = progress_bar("mlwidget-editor-progress")
        self.cancel_button = cancel_button(self.runner, "mlwidget-editor-cancel")
        self.status = Status("mlwidget-editor-status")
        super().__init__(
            children=[
                self.kind,
                self.cls,
                widgets.HTML("<b>Parameters</b>"),
                self.params_box,
                widgets.HTML("<b>Columns</b>"),
                self.target,
                columns_box,
                widgets.HBox(
                    [self.apply_button, self.retrain_button, self.progress, self.cancel_button]
                ),
                self.status,
            ],
            **kwargs,
        )
        self.add_class("mlwidget-editor")
        self.refresh()

    @staticmethod
    def _column_row(name: str, box: widgets.TagsInput) -> widgets.HBox:
        """A column option's box with its name and what it does beside it."""
        label = widgets.HTML(
            f'<label class="mlwidget-editor-label" title="{COLUMN_HELP[name]}">'
            f"<b>{name}</b><br><small>{COLUMN_HELP[name]}</small></label>",
            layout={"width": "190px"},
        )
        label.add_class(f"mlwidget-editor-label-{name}")
        box.placeholder = f"add {name} columns"
        return widgets.HBox([label, box])

    # ---- loading the model's configuration ----------------------------------------------
    def refresh(self) -> None:
        """Load the stored (staged) configuration into the form."""
        self._loading = True
        try:
            options = dict(self.model.options or {})
            current = options.get("class")
            current = getattr(current, "__name__", current)
            self._loaded_class = current
            self.kind.value = suggest_kind(self.model)
            self._fill_classes(current)
            self._build_params(current, own=True)
            self._fill_columns(options)
        except Exception as err:
            self.status.error(err)
        finally:
            self._loading = False

    def _fill_classes(self, current: str | None) -> None:
        names = self._list_estimators(self.kind.value)
        if current and current not in names:
            names = [current, *names]
        self.cls.options = names
        if current in names:
            self.cls.value = current
        elif names:
            self.cls.value = names[0]

    def _fill_columns(self, options: dict) -> None:
        try:
            columns = [str(c) for c in self.model.data().columns]
        except Exception:
            columns = [f["name"] for f in (self.model.features or [])]
        target = options.get("target_col")
        self.target.options = [("(none)", None)] + [(c, c) for c in columns]
        if target is not None and target not in columns:
            self.target.options = [*self.target.options, (str(target), target)]
        self.target.value = target
        for name, w in self.columns.items():
            value = tags(options.get(name))
            w.allowed_tags = list(dict.fromkeys([*columns, *value]))
            w.value = value
        self._initial_columns = {n: list(w.value) for n, w in self.columns.items()}
        self._initial_target = target

    def _build_params(self, cls_name: str | None, own: bool) -> None:
        """Inputs for the class's parameters: the model's values if it is the configured class."""
        from ..estimators import param_specs, resolve_class
        from ..paramdocs import param_help

        self.params, self._initial = {}, {}
        if not cls_name:
            self.params_box.children = []
            return
        allowed = getattr(self.model, "allowed_classes", ()) or ()
        cls = resolve_class(cls_name, allowed)
        values = {}
        if own:
            try:
                values = dict(self.model.info().get("params") or {})
            except Exception:
                values = {}
        specs = visible_specs(cls, param_specs(cls), values)
        width = max([len(s["name"]) for s in specs] + [8]) * 8 + 12
        for spec in specs:
            value = values.get(spec["name"], spec["default"])
            w = param_input(spec, value, param_help(cls, spec["name"]), width)
            self.params[spec["name"]] = w
            self._initial[spec["name"]] = w.value
        self.params_box.children = list(self.params.values())

    def _on_kind(self, change) -> None:
        """Another kind: keep the class if it is of that kind, else preselect the kind's
        sensible default (RandomForestRegressor for "regressor", not the first name)."""
        if self._loading:
            return
        names = self._list_estimators(change["new"])
        keep = self.cls.value if self.cls.value in names else default_class(change["new"])
        self._fill_classes(keep if keep in names else None)

    def _on_class(self, change) -> None:
        if self._loading:
            return
        self.status.clear()
        try:
            self._build_params(change["new"], own=change["new"] == self._loaded_class)
        except Exception as err:
            self.status.error(err)

    # ---- acting ------------------------------------------------------------------------
    def changes(self) -> dict:
        """What Apply would send to ``configure()``: the class if changed, changed values only."""
        out: dict[str, Any] = {}
        if self.cls.value != self._loaded_class:
            out["class_"] = self.cls.value
        for name, w in self.params.items():
            if w.value != self._initial.get(name):
                out[name] = w.value
        for name, w in self.columns.items():
            if list(w.value) != self._initial_columns.get(name):
                out[name] = list(w.value)
        if self.target.value != self._initial_target:
            out["target_col"] = self.target.value
        return out

    def apply(self) -> bool:
        """Stage the form's settings with ``configure()``; errors are shown, not raised."""
        changes = self.changes()
        if not changes:
            self.status.show("Nothing changed.", "info")
            return True
        try:
            self.model.configure(**changes)
        except Exception as err:
            self.status.error(err)
            return False
        self.refresh()
        self.status.show(
            f"Staged {self._describe(changes)}. The fitted model keeps serving until you retrain.",
            "ok",
        )
        self._notify("configure")
        return True

    def retrain(self) -> bool:
        """Apply pending changes, then train on the stored data in the background."""
        if self.changes() and not self.apply():
            return False
        return self.runner.run(
            "Training",
            lambda: self.runner.follow(self.model.retrain(wait=False)),
            self._trained,
            self.status,
            self.progress,
            cancel=self.cancel_button,
        )

    def _trained(self, result: dict) -> None:
        score = result.get("score")
        score = fmt_num(score)
        self.status.show(
            f"Trained {result.get('model', '')} on {result.get('rows', '?')} rows: "
            f"{result.get('metric', 'score')} = {score}.",
            "ok",
        )
        self.refresh()
        self._notify("retrain")

    def _notify(self, what: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(what)
            except Exception as err:
                self.status.show(f"{self.status.text} (refresh failed: {error_text(err)})", "error")

    @staticmethod
    def _describe(changes: dict) -> str:
        parts = [f"{k.rstrip('_')}={v!r}" for k, v in changes.items()]
        return ", ".join(parts)

    def join(self, timeout: float | None = 120) -> None:
        """Wait for a running retrain to finish (for tests and scripts)."""
        self.runner.join(timeout)
