"""Explanations of predictions (``MLModel.explain``, ``?_action=explain``): for each row, how much
each ORIGINAL input column moved the model's output away from its average (SHAP values).

One public function, :func:`explain`, reads one snapshot (no store writes, no HTTP). It uses
the shap package (an optional extra: ``pip install "mlwidget[explain]"``):

- ``tree``: ``shap.TreeExplainer`` on the fitted trees (forests, gradient boosting, XGBoost),
  exact; a forest's output is its class probability, a boosted model's its margin (log-odds);
- ``linear``: ``shap.LinearExplainer`` on the encoded features (their average: a sample of the
  training rows), exact, in the model's margin (log-odds for logistic regression);
- ``permutation``: ``shap.PermutationExplainer`` on the whole pipeline, for every other model
  (and when the columns cannot be traced through the preprocessing): a bounded background
  sample and a bounded number of evaluations a row, so approximate (the answer says so).

An exact method must reproduce the model's own output (``base_value + sum(contributions) ==
value``, checked on every answer); when it does not (a link function, say), the permutation
method answers instead. Encoded columns (the one-hot columns of ``Sex``) are summed back to
the column they came from.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import explain_permutation as permutation
from . import limits
from .errors import BadRequest, Conflict, MLWidgetError, PayloadTooLarge, reason
from .jsonable import to_jsonable
from .predicting import features_frame, final_step, require_pipeline
from .snapshot import Snapshot

INSTALL = 'pip install "mlwidget[explain]" (or pip install shap)'
BACKGROUND_ROWS = 100  # training rows whose average output is an exact method's base value
TOLERANCE = 1e-4  # of base_value + sum(contributions) against the model's own output


def require_shap() -> Any:
    """The shap module, or a 501 saying how to install it."""
    try:
        import shap
    except ImportError:
        raise MLWidgetError(
            f"Explanations need the shap package, which is not installed here. Install it: "
            f"{INSTALL}, then restart the server or kernel.",
            status=501,
        ) from None
    return shap


@dataclass
class Plan:
    """How one fitted pipeline is explained (prepared once, kept while the pipeline lives)."""

    method: str  # tree | linear | permutation
    explainer: Any = None  # the shap explainer of an exact method
    transform: Any = None  # the preprocessing before the estimator (None: the raw rows)
    groups: Any = None  # encoded column -> input column (a 0/1 matrix), exact methods
    background: pd.DataFrame | None = None  # training rows, for the permutation method
    lock: threading.Lock = field(default_factory=threading.Lock)


_plans: weakref.WeakKeyDictionary[Any, Plan] = weakref.WeakKeyDictionary()
_plans_lock = threading.Lock()


def explain(snap: Snapshot, name: str, data: Any, class_: Any = None) -> list[dict[str, Any]]:
    """One explanation per input row: ``{"prediction", "output", "value", "base_value",
    "contributions": {column: number}, "method", "exact"}`` (and ``"note"`` when approximate).
    A classifier's contributions are to the predicted class's output, or to ``class_``'s."""
    pipeline = require_pipeline(snap, name)
    kind = snap.fitted.get("kind")
    if kind not in ("classifier", "regressor"):
        raise BadRequest(
            f"Explanations are for classifiers and regressors; {name!r} is a "
            f"{kind or 'model of unknown kind'} ({type(final_step(pipeline)).__name__})."
        )
    frame = features_frame(snap, data)
    cap = limits.current().max_explain_rows
    if len(frame) > cap:
        raise PayloadTooLarge(
            f"Expected at most {cap} rows to explain (max_explain_rows), got {len(frame)}. "
            "Send fewer rows, or raise MLWidgetApp.max_explain_rows."
        )
    if frame.empty:
        return []
    shap = require_shap()
    names = [str(c) for c in frame.columns]
    try:
        prediction = pipeline.predict(frame)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"The model could not predict these rows: {reason(exc)}") from None
    classes = list(getattr(final_step(pipeline), "classes_", []))
    if kind == "classifier":
        wanted = _chosen_classes(classes, prediction, class_)
    elif class_ is not None:
        raise BadRequest(f"Expected no class for a regressor, got {str(class_)[:40]!r}.")
    else:
        wanted = np.zeros(len(frame), dtype=int)
    plan = _plan(snap, pipeline, names, shap)
    answer = None
    if plan.method != "permutation":
        with plan.lock:
            answer = _exact(plan, pipeline, frame, kind, classes, wanted)
        if answer is None:  # the exact method does not reproduce this model's output
            plan.method, plan.background = "permutation", _background(snap, name)
    if answer is None:
        background = plan.background if plan.background is not None else frame
        answer = permutation.explain(shap, pipeline, frame, background, kind, wanted)
    values, base, what, contributions, note = answer
    label = _labeller(kind, what, classes)
    rows = []
    for i in range(len(frame)):
        row = {
            "prediction": to_jsonable(prediction[i]),
            "output": label(int(wanted[i])),
            "value": float(values[i]),
            "base_value": float(base[i]),
            "contributions": dict(zip(names, map(float, contributions[i]), strict=True)),
            "method": plan.method,
            "exact": note is None,
        }
        if note:
            row["note"] = note
        rows.append(row)
    return rows


def _chosen_classes(classes: list[Any], prediction: Any, class_: Any) -> np.ndarray:
    """The index (in ``classes_``) of the class each row's contributions are to."""
    text = [str(c) for c in classes]
    if class_ is None:
        return np.array([text.index(str(p)) for p in prediction])
    if str(class_) not in text:
        raise BadRequest(
            f"Expected class= one of the model's classes {', '.join(text)}; got "
            f"{str(class_)[:40]!r}."
        )
    return np.full(len(prediction), text.index(str(class_)))


def _plan(snap: Snapshot, pipeline: Any, names: list[str], shap: Any) -> Plan:
    with _plans_lock:
        plan = _plans.get(pipeline)
    if plan is not None:
        return plan
    plan = _prepare(snap, pipeline, names, shap)
    with _plans_lock:
        return _plans.setdefault(pipeline, plan)


def _prepare(snap: Snapshot, pipeline: Any, names: list[str], shap: Any) -> Plan:
    estimator = final_step(pipeline)
    steps = getattr(pipeline, "steps", None)
    transform = pipeline[:-1] if steps and len(steps) > 1 else None
    groups = column_groups(transform, names)
    if groups is not None:
        try:
            return Plan("tree", shap.TreeExplainer(estimator), transform, groups)
        except Exception:  # shap's InvalidModelError and kin: not a tree model it reads
            pass
        data = snap.data()
        if hasattr(estimator, "coef_") and data is not None and len(data):
            sample = _sample(snap, data, BACKGROUND_ROWS)
            encoded = _dense(transform.transform(sample) if transform is not None else sample)
            try:
                return Plan("linear", shap.LinearExplainer(estimator, encoded), transform, groups)
            except Exception:  # coefficients shap cannot read as a linear model
                pass
    plan = Plan("permutation")
    plan.background = _background(snap, snap.name)
    return plan


def column_groups(transform: Any, names: list[str]) -> np.ndarray | None:
    """A 0/1 matrix (encoded columns x input columns) that sums the columns ``transform``
    makes back into the input columns ``names`` (identity without a transform); None when
    the columns cannot be traced (a projection such as PCA mixes them)."""
    if transform is None:
        return np.eye(len(names))
    steps = getattr(transform, "steps", [(None, transform)])
    if len(steps) != 1 or not hasattr(steps[0][1], "output_indices_"):
        return None
    ct = steps[0][1]  # a fitted ColumnTransformer: what mlwidget builds
    width = max((s.stop for s in ct.output_indices_.values()), default=0)
    groups = np.zeros((width, len(names)))
    for tname, trans, columns in ct.transformers_:
        where = ct.output_indices_.get(tname, slice(0, 0))
        if where.stop <= where.start:
            continue
        if isinstance(columns, str):
            columns = [columns]
        if not isinstance(columns, list | tuple | np.ndarray):
            return None
        cols = [names[c] if isinstance(c, int | np.integer) else str(c) for c in columns]
        if any(c not in names for c in cols):
            return None
        if len(cols) == 1:
            outs = [cols[0]] * (where.stop - where.start)
        elif trans == "passthrough":
            outs = cols
        else:
            try:
                outs = [str(o) for o in trans.get_feature_names_out(cols)]
            except Exception:
                return None
        if len(outs) != where.stop - where.start:
            return None
        for offset, out in enumerate(outs):
            source = [c for c in cols if out == c or out.startswith(c + "_")]
            if not source:
                return None
            groups[where.start + offset, names.index(max(source, key=len))] = 1
    return groups


def _dense(matrix: Any) -> np.ndarray:
    dense = matrix.toarray() if hasattr(matrix, "toarray") else matrix
    return np.asarray(dense, dtype=float)


def _sample(snap: Snapshot, data: pd.DataFrame, rows: int) -> pd.DataFrame:
    """Up to ``rows`` training rows (the same ones each time), typed as the model reads them."""
    picked = data.sample(rows, random_state=0) if len(data) > rows else data
    return features_frame(snap, picked)


def _background(snap: Snapshot, name: str) -> pd.DataFrame:
    data = snap.data()
    if data is None or not len(data):
        raise Conflict(
            f"Explaining {name!r} with the permutation method needs its training data (the "
            "rows whose average output the contributions are measured from), and the model "
            "has none stored. Append rows (POST ?_action=append) or retrain with data."
        )
    return _sample(snap, data, permutation.BACKGROUND_ROWS)


def _outputs(pipeline: Any, frame: pd.DataFrame, kind: str) -> dict[str, np.ndarray]:
    """The model's own outputs for the rows, by what they are, each (rows x outputs)."""
    if kind == "regressor":
        return {
            "prediction": np.asarray(pipeline.predict(frame), dtype=float).reshape(len(frame), -1)
        }
    out: dict[str, np.ndarray] = {}
    if hasattr(pipeline, "predict_proba"):
        proba = np.asarray(pipeline.predict_proba(frame), dtype=float)
        out["probability"] = proba
        if proba.shape[1] == 2:
            p = np.clip(proba[:, 1:], 1e-300, 1 - 1e-16)
            out["log-odds"] = np.log(p / (1 - p))
    if hasattr(pipeline, "decision_function"):
        margin = np.asarray(pipeline.decision_function(frame), dtype=float)
        out["margin"] = margin.reshape(len(frame), -1)
    return out


def _labeller(kind: str, what: str, classes: list[Any]) -> Any:
    if kind == "regressor":
        return lambda _: "prediction"
    return lambda index: f"{what} of class {classes[index]}"


def _exact(
    plan: Plan,
    pipeline: Any,
    frame: pd.DataFrame,
    kind: str,
    classes: list[Any],
    wanted: np.ndarray,
) -> tuple[Any, ...] | None:
    """An exact method's answer, or None when it does not reproduce the model's output."""
    encoded = _dense(plan.transform.transform(frame) if plan.transform is not None else frame)
    try:
        values = np.asarray(plan.explainer.shap_values(encoded), dtype=float)
    except Exception:  # shap's own additivity check failed, or it cannot read the model
        return None
    if values.ndim == 2:
        values = values[:, :, None]  # (rows, encoded columns, outputs)
    base = np.atleast_1d(np.asarray(plan.explainer.expected_value, dtype=float))
    if values.ndim != 3 or base.shape != (values.shape[2],):
        return None
    totals = base + values.sum(axis=1)  # (rows, outputs)
    binary = kind == "classifier" and len(classes) == 2 and totals.shape[1] == 1
    outputs = _outputs(pipeline, frame, kind).items()
    # a binary model's one output is class 1's: compare it with class 1's column
    candidates = [(what, own[:, -1:] if binary else own) for what, own in outputs]
    matching = [
        (what, own)
        for what, own in candidates
        if own.shape == totals.shape and np.allclose(totals, own, rtol=TOLERANCE, atol=TOLERANCE)
    ]
    if not matching:
        return None
    what, own = matching[0]
    rows = np.arange(len(frame))
    if values.shape[2] > 1 or kind == "regressor":
        column = wanted if values.shape[2] > 1 else np.zeros(len(frame), dtype=int)
        picked, picked_base, value = values[rows, :, column], base[column], own[rows, column]
    else:  # a binary classifier's one output is class 1's: class 0's is its complement
        sign = np.where(wanted == 1, 1.0, -1.0)
        offset = np.where(wanted == 1, 0.0, 1.0 if what == "probability" else 0.0)
        picked = values[:, :, 0] * sign[:, None]
        picked_base, value = offset + sign * base[0], offset + sign * own[:, 0]
    return value, picked_base, what, picked @ plan.groups, None


class ExplainMixin:
    """``MLModel.explain`` (a mixin of ``MLModel``: the class stays one concept a module)."""

    name: str
    repo: Any

    def explain(self, data: Any, class_: Any = None) -> list[dict[str, Any]]:
        """Why the model predicts what it does, one answer per row: each input column's
        contribution, the base value and the value explained (``output`` says what it is:
        the predicted class's probability or margin, or the prediction), ``method`` (tree,
        linear or permutation) and ``exact``. ``class_``: explain that class instead of the
        predicted one. Needs shap (``pip install "mlwidget[explain]"``)."""
        return self.repo.read(lambda snap: explain(snap, self.name, data, class_))
