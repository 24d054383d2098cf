"""Honest scores: a k-fold cross-validated score beside the training-set score, and the
out-of-fold predictions, summarised for the plots that judge quality (a confusion matrix, or
predicted vs actual).

A training-set score flatters a model that memorises (a forest scores ~0.98 on the rows it
grew on); each out-of-fold prediction comes from a model that never saw that row. Folds are
stratified for classifiers and shuffled with a fixed seed, so the same data and parameters give
the same cv_score. Skipped, with a warning that says why, when the data is too large or the
folds would take too long (``limits.CV_MAX_ROWS``, ``limits.CV_SECONDS``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from . import limits
from .errors import reason

SAMPLE = 500  # predicted-vs-actual pairs kept for a regressor's plot


def cross_validate(
    pipeline: Any,
    X: pd.DataFrame,
    y: pd.Series | None,
    kind: str,
    fit_seconds: float,
    progress: Callable[[str, float | None], None] | None = None,
    folds: int | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[str]]:
    """``(cv_score, out_of_fold, warnings)`` of the unfitted copy of ``pipeline`` on X, y.

    ``cv_score``: ``{"value", "std", "metric", "on": "5-fold cv", "folds", "seconds"}``;
    ``out_of_fold``: a classifier's ``{"labels", "matrix"}`` confusion matrix, or a regressor's
    ``{"actual", "predicted"}`` sample. None (with a warning) when skipped."""
    if y is None or kind not in ("classifier", "regressor"):
        return None, None, []
    folds = limits.CV_FOLDS if folds is None else folds
    if folds == 0:
        return None, None, []  # turned off (cv_folds=0): no warning, the user chose it
    rows = len(X)
    if kind == "classifier":
        smallest = int(y.value_counts().min()) if rows else 0
        folds = min(folds, smallest)
    if folds < 2 or rows < 2 * max(folds, 2):
        return (
            None,
            None,
            [
                "No cross-validated score: too few rows (or a class with fewer than 2 rows) to "
                "hold some out; the score shown is on the training rows."
            ],
        )
    if rows > limits.CV_MAX_ROWS or fit_seconds * folds > limits.CV_SECONDS:
        return (
            None,
            None,
            [
                f"No cross-validated score: {folds} more fits of {rows:,} rows would take about "
                f"{fit_seconds * folds:.0f} s (the budget is {limits.CV_SECONDS} s and "
                f"{limits.CV_MAX_ROWS:,} rows); the score shown is on the training rows."
            ],
        )
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=0)
        if kind == "classifier"
        else KFold(folds, shuffle=True, random_state=0)
    )
    start = time.perf_counter()
    scores: list[float] = []
    oof: np.ndarray | None = None
    try:
        for i, (train, test) in enumerate(splitter.split(X, y)):
            if progress is not None:
                progress("cv", i / folds)
            model = clone(pipeline).fit(X.iloc[train], y.iloc[train])
            scores.append(float(model.score(X.iloc[test], y.iloc[test])))
            predicted = np.asarray(model.predict(X.iloc[test]))
            if oof is None:
                oof = np.empty(rows, dtype=predicted.dtype)
            oof[test] = predicted
    except Exception as exc:  # the estimator cannot fit a fold (a class missing, say)
        return None, None, [f"No cross-validated score: a fold could not be fit ({reason(exc)})."]
    if progress is not None:
        progress("cv", 1.0)
    cv_score = {
        "value": float(np.mean(scores)),
        "std": float(np.std(scores)),
        "metric": "accuracy" if kind == "classifier" else "r2",
        "on": f"{folds}-fold cv",
        "folds": folds,
        "seconds": round(time.perf_counter() - start, 3),
    }
    try:
        summary = _summary(kind, y, oof)
    except Exception:  # labels a confusion matrix cannot take: the score still stands
        summary = None
    return cv_score, summary, []


def _summary(kind: str, y: pd.Series, oof: np.ndarray) -> dict[str, Any]:
    from .jsonable import to_jsonable

    if kind == "classifier":
        from sklearn.metrics import confusion_matrix

        actual = y.to_numpy()
        labels = np.unique(np.concatenate([actual, oof]))
        matrix = confusion_matrix(actual, oof, labels=labels)
        return {"labels": to_jsonable(list(labels)), "matrix": matrix.tolist()}
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(y), size=min(SAMPLE, len(y)), replace=False))
    return {
        "actual": to_jsonable(y.to_numpy(dtype=float)[pick].tolist()),
        "predicted": to_jsonable(oof[pick].tolist()),
    }
