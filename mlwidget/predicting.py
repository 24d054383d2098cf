"""Predictions and scores from one snapshot of a model. No store writes, no HTTP, no widgets.

Each function reads one ``Snapshot`` (see snapshot.py), so all its parts see the same version of
the model; ``MLModel`` calls them through its one retry loop. ``fast`` is the snapshot's
compiled few-row predictor (fastpath/), or None when the fast path is off or declined.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from . import estimators as est
from . import schema
from .answer_limits import check_answer, declared_width, out_of_memory_is_413
from .errors import BadRequest, MLWidgetError, NotFound, reason
from .jsonable import to_jsonable
from .snapshot import Snapshot
from .tables import read_table


def final_step(pipeline: Any) -> Any:
    """The estimator at the end of a pipeline (or the model itself, or None)."""
    steps = getattr(pipeline, "steps", None)
    return steps[-1][1] if steps else pipeline


def require_pipeline(snap: Snapshot, name: str) -> Any:
    pipeline = snap.pipeline()
    if pipeline is None:
        raise NotFound(
            f"Model {name!r} has no fitted estimator. Train it with retrain() "
            "(REST: POST ?_action=retrain)."
        )
    return pipeline


def features_frame(snap: Snapshot, table: Any) -> pd.DataFrame:
    """The input rows as the fitted model expects them: typed, ordered, by name."""
    frame = read_table(table)
    features = snap.schema
    if not features:
        return frame
    names = [f["name"] for f in features]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise BadRequest(
            f"Expected the feature column(s) {', '.join(map(repr, missing))}, which the "
            f"model was trained on; got columns {', '.join(map(repr, map(str, frame.columns)))}. "
            "Add them (an empty value is imputed)."
        )
    return schema.cast(frame[names].reset_index(drop=True), features)


def predict(snap: Snapshot, name: str, data: Any, fast: Any, beside: int = 0) -> list[Any]:
    """One prediction per input row, in input order. The answer is held to ``max_table_cells``
    before it is built (``beside``: columns a table answer carries next to it, e.g. the input's)."""
    pipeline = require_pipeline(snap, name)
    out = fast.predict(data) if fast is not None else None  # classifiers, regressors: 1 a row
    if out is not None:
        return out
    frame = features_frame(snap, data)
    if frame.empty:
        return []
    kind = snap.fitted.get("kind")
    transforms = hasattr(pipeline, "transform") and (
        not hasattr(pipeline, "predict") or kind == "transformer"
    )
    if not transforms:
        check_answer(len(frame), 1 + beside, "predictions")
    with out_of_memory_is_413(len(frame), "the predictions"):
        out = fast.predict_frame(frame) if fast is not None else None  # bulk: no ColumnTransformer
        if out is not None:
            return to_jsonable(out)
        try:
            if transforms:
                out = transform(pipeline, frame, beside)
            else:
                out = pipeline.predict(frame)
        except MLWidgetError:
            raise
        except (ValueError, TypeError, AttributeError) as exc:
            raise BadRequest(
                f"{type(final_step(pipeline)).__name__} could not predict these rows: "
                f"{reason(exc)}. It may not be a predicting estimator: choose a classifier, "
                "regressor, clusterer or transformer."
            ) from None
        return to_jsonable(out)


def transform(pipeline: Any, frame: pd.DataFrame, beside: int = 0) -> Any:
    """``pipeline.transform(frame)``, held to ``max_table_cells`` before it is built: by the
    width the final estimator declares, else by the width of its output for the first row (a
    chunk of one row: every row of a fitted transformer's output has the same width), and only
    then for all the rows."""
    rows, estimator = len(frame), final_step(pipeline)
    what = f"the output of {type(estimator).__name__}"
    width = declared_width(estimator)
    if width is not None:
        check_answer(rows, width + beside, what, estimator)
        return pipeline.transform(frame)
    first = pipeline.transform(frame.iloc[:1])
    shape: tuple[int, ...] = getattr(first, "shape", (1,))
    check_answer(rows, (shape[1] if len(shape) > 1 else 1) + beside, what, estimator)
    return first if rows == 1 else pipeline.transform(frame)


def _rows_of(data: Any) -> int | None:
    """How many rows ``data`` holds, when that is cheap to tell (a table, records, one record
    or ``{column: [values]}``); None otherwise."""
    if isinstance(data, pd.DataFrame | list):
        return len(data)
    if isinstance(data, dict):
        lengths = [len(v) for v in data.values() if isinstance(v, list | tuple)]
        return max(lengths) if lengths else 1
    return None


def predict_proba(snap: Snapshot, name: str, data: Any, fast: Any) -> list[dict[Any, float]]:
    """Class probabilities for each row, as ``{class: probability}``."""
    pipeline = require_pipeline(snap, name)
    if not hasattr(pipeline, "predict_proba"):
        raise BadRequest(
            f"{type(final_step(pipeline)).__name__} does not give probabilities. Use "
            "predict, or a classifier with predict_proba (SGDClassifier needs loss=log_loss)."
        )
    rows = _rows_of(data)
    if rows is not None:
        check_answer(rows, len(_classes(pipeline)), "class probabilities")
    out = fast.predict_proba(data) if fast is not None else None
    if out is not None:
        return out
    frame = features_frame(snap, data)
    if frame.empty:
        return []
    check_answer(len(frame), len(_classes(pipeline)), "class probabilities")
    with out_of_memory_is_413(len(frame), "the class probabilities"):
        try:
            proba = fast.predict_frame(frame, proba=True) if fast is not None else None
            if proba is None:
                proba = pipeline.predict_proba(frame)
        except (ValueError, TypeError, AttributeError) as exc:
            raise BadRequest(f"The model could not give probabilities: {reason(exc)}") from None
        labels = getattr(final_step(pipeline), "classes_", None)  # a mixture has components
        classes = est.to_jsonable(
            np.asarray(labels if labels is not None else range(proba.shape[1]))
        )
        return [dict(zip(classes, map(float, row), strict=True)) for row in proba]


def check_total(snap: Snapshot, action: str, rows: int, beside: int = 0) -> None:
    """Hold a whole job's answer (predicted chunk by chunk, or partition by partition) to
    ``max_table_cells`` before its first chunk, as the call without a job holds it: ``action``
    is predict, predict_proba or predict_table (``beside``: the input columns it carries)."""
    pipeline = snap.pipeline()
    if pipeline is None:
        return
    if action == "predict_proba":
        check_answer(rows, len(_classes(pipeline)), "class probabilities")
        return
    transforms = hasattr(pipeline, "transform") and (
        not hasattr(pipeline, "predict") or snap.fitted.get("kind") == "transformer"
    )
    estimator = final_step(pipeline)
    width = declared_width(estimator) if transforms else 1
    if width is not None:
        what = f"the output of {type(estimator).__name__}" if transforms else "predictions"
        check_answer(rows, width + beside, what, estimator if transforms else None)


def _classes(pipeline: Any) -> list[Any]:
    labels = getattr(final_step(pipeline), "classes_", None)
    return [] if labels is None else list(labels)


def predict_table(snap: Snapshot, name: str, frame: pd.DataFrame, fast: Any) -> pd.DataFrame:
    """The input rows with the predictions in the target column (text features echoed as the
    model reads them, see ``MLModel.predict_table``)."""
    preds = predict(snap, name, frame, fast, beside=len(frame.columns))
    column = snap.options.get("target_col") or snap.fitted.get("target_col")
    out = typed_echo(snap, frame)
    if preds and isinstance(preds[0], list):
        for i in range(len(preds[0])):
            out[f"component_{i}"] = [row[i] for row in preds]
    else:
        out[column or "prediction"] = preds
    return out


def typed_echo(snap: Snapshot, frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text feature columns are cast by the model's schema, and whose
    integer features (``"integer": true`` in the schema) are integers when every value is whole
    (Gramex answers ``3``, not ``3.0``; a missing value stays missing)."""
    out = frame.copy()
    if not out.columns.is_unique:
        return out
    text = [
        f
        for f in snap.schema
        if f["name"] in out.columns
        and (out[f["name"]].dtype == object or isinstance(out[f["name"]].dtype, pd.StringDtype))
    ]
    if text:
        typed = schema.cast(out[[f["name"] for f in text]], text)
        for f in text:
            out[f["name"]] = typed[f["name"]]
    for f in snap.schema:
        if f.get("integer") and f["name"] in out.columns:
            out[f["name"]] = whole_numbers(out[f["name"]])
    return out


def whole_numbers(column: pd.Series) -> pd.Series:
    """A float column whose values are all whole (and exact as floats) as nullable integers
    (``Int64``: missing values stay missing); any other column as it is."""
    if not pd.api.types.is_float_dtype(column):
        return column
    values = column.dropna().to_numpy()
    if not (np.isfinite(values).all() and (values == np.round(values)).all()):
        return column
    if len(values) and np.abs(values).max() > 2**53:
        return column
    return column.astype("Int64")


def score(snap: Snapshot, name: str, frame: pd.DataFrame, metric: str | None) -> dict[str, Any]:
    """Score the rows against their target column with any scikit-learn scorer name."""
    from sklearn.metrics import get_scorer, get_scorer_names

    pipeline = require_pipeline(snap, name)
    fitted = snap.fitted
    target = fitted.get("target_col") or snap.options.get("target_col")
    if fitted.get("kind") in ("clusterer", "transformer") or not target:
        X = features_frame(snap, frame)
        if metric:
            raise BadRequest(
                f"Expected no metric for an unsupervised model, got {metric!r}; it is scored "
                "with its own score()."
            )
        if not hasattr(pipeline, "score"):
            raise BadRequest(f"{type(final_step(pipeline)).__name__} cannot be scored.")
        return {"score": float(pipeline.score(X)), "metric": "score"}
    if target not in frame.columns:
        raise BadRequest(
            f"Expected the target column {target!r} in the data to score against, got "
            f"columns {', '.join(map(repr, map(str, frame.columns)))}. Include it."
        )
    frame = frame[frame[target].notna()]
    X = features_frame(snap, frame)
    y = frame[target].reset_index(drop=True)
    y = schema.cast_target(y, fitted.get("target_dtype"))
    metric = metric or ("accuracy" if fitted.get("kind") == "classifier" else "r2")
    if metric not in get_scorer_names():
        raise BadRequest(
            f"Expected a scikit-learn scorer name such as accuracy, f1_weighted, roc_auc, r2 "
            f"or neg_mean_absolute_error; got {metric!r}."
        )
    try:
        value = get_scorer(metric)(pipeline, X, y)
    except (ValueError, TypeError, AttributeError) as exc:
        raise BadRequest(f"Could not compute {metric}: {reason(exc)}") from None
    return {"score": float(value), "metric": metric, "rows": len(X)}


def _free_name(frame: pd.DataFrame, name: str) -> str:
    """``name``, or ``name (2)``... if the input already has such a column."""
    taken = {str(c) for c in frame.columns}
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def predict_results(
    snap: Snapshot,
    name: str,
    frame: pd.DataFrame,
    fast: Any,
    proba: bool = False,
    scored: bool = True,
) -> dict[str, Any]:
    """Bulk results a person reads (see ``MLModel.predict_results``): the input as given, the
    predictions, class probabilities if asked, and ``correct`` / ``error`` with the score when
    the input has the target column (``scored=False``: without the score, which predicts the
    rows a second time: a source job's partitions)."""
    extra = 2 + (len(_classes(require_pipeline(snap, name))) if proba else 0)
    what = "the results table" + (" with class probabilities" if proba else "")
    check_answer(len(frame), len(frame.columns) + extra, what)
    preds = predict(snap, name, frame, fast, beside=len(frame.columns) + extra - 1)
    fitted = snap.fitted
    kind = fitted.get("kind")
    target = fitted.get("target_col") or snap.options.get("target_col")
    table = frame.copy().reset_index(drop=True)
    if preds and isinstance(preds[0], list):  # a transformer: one column per component
        names = [_free_name(table, f"component_{i}") for i in range(len(preds[0]))]
        for i, column in enumerate(names):
            table[column] = [row[i] for row in preds]
        predicted = names[0]
    else:
        predicted = _free_name(table, f"predicted {target}" if target else "prediction")
        table[predicted] = pd.Series(preds, dtype=object if not preds else None)
    proba_columns: list[str] = []
    if proba:
        rows = predict_proba(snap, name, frame, fast)
        classes = (
            list(rows[0]) if rows else list(getattr(final_step(snap.pipeline()), "classes_", []))
        )
        for label in classes:
            column = _free_name(table, f"P({label})")
            table[column] = [float(row[label]) for row in rows]
            proba_columns.append(column)
    actual, answer_score = None, None
    supervised = kind in ("classifier", "regressor")
    if supervised and target and target in [str(c) for c in frame.columns] and len(table):
        actual = target
        raw = table[target]
        known = raw.notna()
        truth = pd.Series([None] * len(table), dtype=object)
        if known.any():
            truth[known] = schema.cast_target(raw[known], fitted.get("target_dtype")).to_numpy(
                dtype=object
            )
        if kind == "classifier":
            correct = [
                None if not k else bool(p == t)
                for p, t, k in zip(table[predicted], truth, known, strict=True)
            ]
            dtype = bool if known.all() else object
            table[_free_name(table, "correct")] = pd.Series(correct, dtype=dtype)
        else:
            predicted_numbers = pd.to_numeric(table[predicted], errors="coerce")
            table[_free_name(table, "error")] = predicted_numbers - pd.to_numeric(
                truth, errors="coerce"
            )
        if known.any() and scored:
            answer_score = score(snap, name, frame, None)
    return {
        "table": table,
        "predicted": predicted,
        "actual": actual,
        "score": answer_score,
        "proba": proba_columns,
    }


def best_classes(proba: Sequence[Mapping[Any, float]]) -> list[Any]:
    """The most probable class of each row (what a ``predict_proba`` answer predicts)."""
    return [max(row, key=row.__getitem__) if row else None for row in proba]
