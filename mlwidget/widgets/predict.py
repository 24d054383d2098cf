"""The predict form: one input per feature, generated from the model's training schema, and
under its answer the feedback on it (right / wrong / the actual value: ``model.feedback``)."""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as widgets

from .. import predlog
from ..display import fmt_num
from ..jsonable import to_jsonable as jsonable
from ._common import Status, button, error_text, esc
from .render import clean_label, date_format, draw_waterfall, figure_png, waterfall_steps


def feature_input(feature: dict, width: int = 120) -> widgets.ValueWidget:
    """A Dropdown of the seen values for a categorical feature (clean labels: ``3``, not
    ``3.0``), a date picker for a column of dates, a number box for a numeric one."""
    name = feature["name"]
    default = jsonable(feature.get("default"))
    common = {
        "description": name,
        "tooltip": f"{name} ({feature.get('dtype', feature.get('kind', ''))})",
        "style": {"description_width": f"{width}px"},
        "layout": widgets.Layout(width=f"{width + 220}px"),
    }
    if feature.get("kind") in ("category", "date"):  # a date: read as numbers by the model
        cats = [jsonable(c) for c in feature.get("categories") or []]
        if default is not None and default not in cats:
            cats.insert(0, default)
        fmt = date_format(cats)
        if not cats or (fmt is None and feature.get("kind") == "date"):
            w = widgets.Text(value="" if default is None else str(default), **common)
        elif fmt is not None:
            w = date_input(cats, default, fmt, common)
        else:
            options = [(clean_label(c), c) for c in cats]
            w = widgets.Dropdown(
                options=options, value=default if default in cats else cats[0], **common
            )
    else:
        dtype = str(feature.get("dtype", ""))
        is_int = dtype.startswith(("int", "uint", "Int", "UInt")) or (
            isinstance(default, int) and not isinstance(default, bool)
        )
        if is_int and (default is None or float(default).is_integer()):
            w = widgets.IntText(value=int(default or 0), **common)
        else:  # a typical value, rounded as a person would type it
            value = float(default) if default is not None else 0.0
            w = widgets.FloatText(value=float(fmt_num(value) or 0), **common)
    w.add_class("mlwidget-input")
    w.add_class(f"mlwidget-input-{name}")
    return w


def date_input(cats: list, default, fmt: str, common: dict) -> widgets.DatePicker:
    """A date picker for a column of dates (not a dropdown of every date seen); the row sends
    the date written as the training data wrote them (``date_format``)."""
    import datetime as dt

    def parse(value):
        if isinstance(value, dt.date):
            return value if not isinstance(value, dt.datetime) else value.date()
        return dt.datetime.strptime(str(value).strip(), fmt).date()

    seen = sorted(parse(c) for c in cats)
    value = parse(default) if default is not None else seen[len(seen) // 2]
    tip = (
        f"{common['tooltip']}: a date between {seen[0]} and {seen[-1]}; dates the training "
        "data does not have count as unknown"
    )
    w = widgets.DatePicker(value=value, **{**common, "tooltip": tip})
    w.date_format = fmt
    w.add_class("mlwidget-date")
    return w


def input_value(w: widgets.ValueWidget):
    """What the row sends for an input: a date picker's date as the training data wrote it."""
    fmt = getattr(w, "date_format", None)
    if fmt and w.value is not None:
        return w.value.strftime(fmt)
    return w.value


class PredictForm(widgets.VBox):
    """Fill one row, press Predict, read the answer (and class probabilities for classifiers)."""

    def __init__(self, model: Any, **kwargs: Any) -> None:
        self.model = model
        self.inputs: dict[str, widgets.ValueWidget] = {}
        self.prediction: Any = None
        self.prediction_ids: list[str] = []  # the last answer's, when the model logs (predlog)
        self.probabilities: dict | None = None
        self.fields = widgets.VBox()
        self.fields.add_class("mlwidget-predict-fields")
        self.button = button("Predict", "mlwidget-predict-button", "Predict this row", "primary")
        self.button.on_click(lambda _: self.predict())
        self.explain_button = button(
            "Explain", "mlwidget-explain-button",
            "Why this prediction: each column's contribution (model.explain)",
        )  # fmt: skip
        self.explain_button.on_click(lambda _: self.explain())
        self.explanation: dict | None = None  # the last model.explain answer shown
        self.steps: list[dict] = []  # its waterfall's steps, as drawn (render.waterfall_steps)
        self.waterfall = widgets.Image(format="png", layout=widgets.Layout(max_width="640px"))
        self.waterfall.add_class("mlwidget-waterfall")
        self.explain_note = widgets.HTML()
        self.explain_note.add_class("mlwidget-explain-note")
        self.explain_box = widgets.VBox([self.waterfall, self.explain_note])
        self.explain_box.layout.display = "none"
        self.answer = widgets.HTML()
        self.answer.add_class("mlwidget-answer")
        self.status = Status("mlwidget-predict-status")
        self.feedback = FeedbackBox(model)
        buttons = widgets.HBox([self.button, self.explain_button])
        children = [self.fields, buttons, self.answer, self.explain_box, self.feedback, self.status]
        super().__init__(children=children, **kwargs)
        self.add_class("mlwidget-predict")
        self.refresh()

    # ---- building ----------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild the inputs from the model's schema, keeping values the user already set."""
        try:
            features = self.model.features or []
        except Exception as err:
            self.status.error(err)
            features = []
        old = {name: w.value for name, w in self.inputs.items()}
        inputs = {}
        width = max([len(str(f["name"])) for f in features] + [10]) * 8 + 12
        for feature in features:
            w = feature_input(feature, width)
            if feature["name"] in old:
                try:
                    w.value = old[feature["name"]]
                except Exception:  # the type or the categories changed: keep the default
                    pass
            inputs[feature["name"]] = w
        self.inputs = inputs
        self.fields.children = list(inputs.values())
        self.button.disabled = self.explain_button.disabled = not inputs
        if not inputs:
            self.status.show(
                "No fitted model yet: train one in the Upload or Editor tab, then come back.",
                "info",
            )
        elif self.status.kind == "info":
            self.status.clear()

    def row(self) -> dict:
        """The row the form holds, as {feature: value}."""
        return {name: input_value(w) for name, w in self.inputs.items()}

    def set_row(self, row: dict) -> None:
        """Fill the form from a dict (unknown keys are ignored)."""
        for name, value in row.items():
            if name in self.inputs:
                w = self.inputs[name]
                if getattr(w, "date_format", None) and isinstance(value, str):
                    import datetime as dt

                    value = dt.datetime.strptime(value, w.date_format).date()
                w.value = value

    # ---- acting ------------------------------------------------------------------------
    def predict(self) -> Any:
        """Predict the row; show the answer (and probabilities) or the error."""
        self.status.clear()
        self.feedback.show_for([])
        self.show_explanation(None)  # a new answer: its explanation is asked for again
        row = self.row()
        started, proba = time.perf_counter(), None
        try:
            with predlog.facing("widget"):  # one record for the answer and its probabilities
                self.prediction = jsonable(self.model.predict([row])[0])
                self.probabilities = None
                if getattr(self.model, "kind", None) == "classifier":
                    try:
                        proba = self.model.predict_proba([row])
                        self.probabilities = {str(k): float(v) for k, v in proba[0].items()}
                    except Exception as err:  # e.g. an SVC without probability=True
                        self.status.show(f"No class probabilities: {error_text(err)}", "info")
            done = predlog.answered(
                self.model, "widget", [row], [self.prediction], started, proba, "records"
            )
            self.prediction_ids = done.ids() if done is not None else []
        except Exception as err:
            self.prediction, self.probabilities = None, None
            self.answer.value = ""
            self.status.error(err)
            return None
        self.answer.value = self._answer_html()
        self.feedback.show_for(self.prediction_ids, list(self.probabilities or ()))
        return self.prediction

    def explain(self) -> dict | None:
        """Explain the row (``model.explain``): draw its waterfall (the base value, each
        column's contribution, the output) under the answer, or show the error."""
        self.status.clear()
        row = self.row()
        try:
            [explanation] = self.model.explain([row])
        except Exception as err:
            self.show_explanation(None)
            self.status.error(err)
            return None
        self.show_explanation(explanation, row)
        return explanation

    def show_explanation(self, explanation: dict | None, row: dict | None = None) -> None:
        """Show ``explanation``'s waterfall and what it explains (None: hide them)."""
        self.explanation = explanation
        self.steps = waterfall_steps(explanation, row) if explanation else []
        self.explain_box.layout.display = None if explanation else "none"
        if not explanation:
            self.waterfall.value, self.explain_note.value = b"", ""
            return
        steps = self.steps
        self.waterfall.value = figure_png(
            lambda ax: draw_waterfall(ax, steps), (6.5, 0.8 + 0.32 * len(steps))
        )
        total = sum(s["value"] for s in steps if s["kind"] == "feature")
        how = "exact: the contributions add up to the output" if explanation.get("exact") else (
            f"approximate: {explanation.get('note') or 'estimated'}"
        )  # fmt: skip
        self.explain_note.value = (
            f'<div style="color:#444;font-size:0.9em">Prediction '
            f"<b>{esc(fmt_num(jsonable(explanation['prediction'])))}</b>; explained: the "
            f"{esc(explanation.get('output', 'output'))}: {esc(fmt_num(steps[0]['value']))} on "
            f"average over the training rows, {'+' if total >= 0 else ''}{esc(fmt_num(total))} "
            f"from this row's columns = {esc(fmt_num(explanation['value']))}. Red pushes it up, "
            f"blue down. Method: {esc(explanation.get('method'))} ({esc(how)}).</div>"
        )

    def _answer_html(self) -> str:
        target = self.model.target_col or "prediction"
        out = [
            '<div class="mlwidget-answer-line" style="font-size:1.2em;margin:6px 0">'
            f"{esc(target)} = "
            f'<b title="{esc(self.prediction)}" class="mlwidget-prediction">'
            f"{esc(fmt_num(self.prediction))}</b></div>"
        ]
        if self.probabilities:
            left = ' style="text-align:left"'
            out.append(
                f'<table class="mlwidget-proba"><tr><th{left}>class</th>'
                f"<th{left}>probability</th></tr>"
            )
            for label, p in sorted(self.probabilities.items(), key=lambda kv: -kv[1]):
                bar = f'<div style="background:#90caf9;height:10px;width:{p * 120:.0f}px"></div>'
                out.append(
                    f"<tr><td>{esc(clean_label(label))}</td>"
                    f'<td class="mlwidget-proba-value">{fmt_num(p, 3)}</td>'
                    f"<td>{bar}</td></tr>"
                )
            out.append("</table>")
        return "".join(out)


class FeedbackBox(widgets.VBox):
    """Under an answer: was it right? ``Right`` and ``Wrong`` flag the answer's prediction ids
    (``Wrong`` with the actual value when one is typed), ``Send the actual value`` gives the
    actual alone; each calls ``model.feedback(...)`` and says what was stored (or the error).
    Shown when the answer carried ids (the model logs its predictions); else a hint."""

    def __init__(self, model: Any, **kwargs: Any) -> None:
        self.model = model
        self.ids: list[str] = []
        self.stored: dict | None = None  # model.feedback's last answer
        self.right = button("Right", "mlwidget-feedback-right", "The answer was right", "success")
        self.wrong = button(
            "Wrong", "mlwidget-feedback-wrong",
            "The answer was wrong (with the actual value, when you type it)", "danger",
        )  # fmt: skip
        self.actual = widgets.Combobox(
            description="Actual value", placeholder="what it should have been",
            ensure_option=False, style={"description_width": "90px"},
        )  # fmt: skip
        self.actual.add_class("mlwidget-feedback-actual")
        self.note = widgets.Text(
            description="Note", placeholder="optional", style={"description_width": "90px"}
        )
        self.note.add_class("mlwidget-feedback-note")
        self.send = button(
            "Send the actual value", "mlwidget-feedback-send", "Store the actual value typed"
        )
        self.right.on_click(lambda _: self.give("right"))
        self.wrong.on_click(lambda _: self.give("wrong"))
        self.send.on_click(lambda _: self.give(None))
        self.status = Status("mlwidget-feedback-status")
        self.hint = widgets.HTML()
        self.hint.add_class("mlwidget-feedback-hint")
        question = widgets.HTML("<b>Was it right?</b>")
        self.controls = widgets.VBox([
            widgets.HBox([question, self.right, self.wrong]),
            widgets.HBox([self.actual, self.send]),
            self.note,
        ])  # fmt: skip
        super().__init__(children=[self.controls, self.status, self.hint], **kwargs)
        self.add_class("mlwidget-feedback")
        self.show_for([])

    def show_for(self, ids: list[str], classes: list[str] | None = None) -> None:
        """Offer feedback on the answer whose rows have ``ids`` (none: hide the controls;
        ``classes``: the classifier's, offered as actual values)."""
        self.ids, self.stored = list(ids), None
        self.actual.value, self.note.value = "", ""
        self.actual.options = tuple(clean_label(c) for c in classes or ())
        self.status.clear()
        self.controls.layout.display = None if self.ids else "none"
        try:
            logging = bool((self.model.options or {}).get("log_predictions"))
        except Exception:  # no model state to read: no hint either
            logging = True
        self.hint.value = (
            '<span style="color:#666;font-size:0.9em">Feedback on answers needs the '
            "prediction log: model.configure(log_predictions=True).</span>"
            if not self.ids and not logging
            else ""
        )

    def give(self, flag: str | None) -> dict | None:
        """Store the feedback on the answer: ``flag`` right or wrong (with the typed actual
        value for wrong), or None for the actual value alone."""
        if not self.ids:
            return None
        actual, note = str(self.actual.value).strip(), self.note.value.strip()
        if flag is None and not actual:
            self.status.show("Type the actual value first.", "error")
            return None
        item: dict[str, Any] = {}
        if flag is not None:
            item["flag"] = flag
        if actual and flag != "right":
            item["actual"] = actual
        if note:
            item["note"] = note
        try:
            self.stored = self.model.feedback([{"id": i, **item} for i in self.ids])
        except Exception as err:
            self.status.error(err)
            return None
        said = [flag] if flag else []
        if "actual" in item:
            said.append(f"the actual value was {actual}")
        if note:
            said.append(f"note: {note}")
        ids = ", ".join(self.ids)
        self.status.show(f"Stored for prediction {ids}: {'; '.join(said)}.", "ok")
        return self.stored
