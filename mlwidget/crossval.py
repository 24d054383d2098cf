"""Honest scores: a k-fold cross-validated score beside the training-set score, and the
out-of-fold predictions, summarised for the plots that judge quality (a confusion matrix, or
predicted vs actual).

A training-set score flatters a model that memorises (a forest scores ~0.98 on the rows it
grew on); each out-of-fold prediction comes from a model that never saw that row. Folds are
stratified for classifiers and shuffled with a fixed seed, so the same data and parameters give
the same cv_score. A model that reads a date column is validated forward in time instead
(``split: "time"``): the rows are ordered by that column and each fold trains on the rows
before the block it is scored on (scikit-learn's ``TimeSeriesSplit``), so the score is that of
predicting later rows from earlier ones, not of filling gaps between them; the first block is
never scored. Skipped, with a warning that says why, when the data is too large or the folds
would take too long (``cv_max_rows``, ``cv_seconds`` of ``limits.Limits``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from . import dates, limits
from .errors import reason
from .progress import Report, fit_pipeline

SAMPLE = 500  # predicted-vs-actual pairs kept for a regressor's plot


def plan(
    X: pd.DataFrame,
    y: pd.Series | None,
    kind: str | None,
    fit_seconds: float,
    folds: int | None = None,
    ceilings: limits.Limits | None = None,
) -> tuple[int | None, list[str]]:
    """``(folds, warnings)``: how many folds to cross-validate a fit of X, y with (None: no
    cross-validation, with a warning that says why unless the user turned it off).

    Decided right after the fit, from its rows and its own time: the folds then run after the
    fit is committed (tasks.py), so a retrain answers as soon as its model serves."""
    ceilings = limits.as_limits(ceilings)
    if y is None or kind not in ("classifier", "regressor"):
        return None, []
    folds = ceilings.cv_folds if folds is None else folds
    if folds == 0:
        return None, []  # turned off (cv_folds=0): no warning, the user chose it
    rows = len(X)
    if kind == "classifier":
        smallest = int(y.value_counts().min()) if rows else 0
        folds = min(folds, smallest)
    if folds < 2 or rows < 2 * max(folds, 2):
        return None, [
            "No cross-validated score: too few rows (or a class with fewer than 2 rows) to "
            "hold some out; the score shown is on the training rows."
        ]
    if rows > ceilings.cv_max_rows or fit_seconds * folds > ceilings.cv_seconds:
        return None, [
            f"No cross-validated score: {folds} more fits of {rows:,} rows would take about "
            f"{fit_seconds * folds:.0f} s (the budget is {ceilings.cv_seconds:g} s and "
            f"{ceilings.cv_max_rows:,} rows); the score shown is on the training rows."
        ]
    return folds, []


def pending(folds: int, job: str | None) -> dict[str, Any]:
    """The ``cv_score`` of a version whose folds have not run yet: ``{"pending": true, "job",
    "on", "folds"}`` (the job that computes it; ``GET ?_job=ID`` follows it)."""
    return {"pending": True, "job": job, "on": f"{folds}-fold cv", "folds": folds}


def is_pending(cv_score: Any) -> bool:
    return isinstance(cv_score, dict) and bool(cv_score.get("pending"))


def splits(
    X: pd.DataFrame, y: pd.Series, kind: str | None, folds: int, by: str | None = None
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str | None, list[str]]:
    """``(folds, by, warnings)``: the ``(train, test)`` row positions of each fold, the date
    column they follow (None: shuffled) and why some were left out.

    With ``by``, forward in time: the distinct times of that column in order (rows without
    one first), each fold fitted on the rows of the times before its block of times and
    scored on that block, so that no time is on both sides (a date shared by many rows);
    a classifier's fold whose earlier rows hold one class only is left out. Shuffled instead
    (stratified for a classifier, with a fixed seed) when ``by`` is None or has fewer
    distinct times than ``folds`` + 1."""
    from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

    if by is not None:
        group = _time_groups(dates.parse(X[by]).to_numpy(dtype="datetime64[ns]"))
        if group.max(initial=-1) + 1 >= folds + 1:
            found = [
                (np.flatnonzero(np.isin(group, tr)), np.flatnonzero(np.isin(group, te)))
                for tr, te in TimeSeriesSplit(folds).split(np.arange(group.max() + 1))
            ]
            kept = found
            if kind == "classifier":
                kept = [(tr, te) for tr, te in found if y.iloc[tr].nunique() >= 2]
            skipped = len(found) - len(kept)
            warns = (
                [
                    f"{skipped} of the {len(found)} folds forward in time were not scored: "
                    "their earlier rows hold one class only."
                ]
                if skipped
                else []
            )
            return kept, by, warns
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=0)
        if kind == "classifier"
        else KFold(folds, shuffle=True, random_state=0)
    )
    return list(splitter.split(X, y)), None, []


def folds_record(folds: int, by: str | None) -> dict[str, Any]:
    """What a cv_score says of its folds: ``{"on": "5-fold cv", "folds": 5, "split":
    "shuffled"}``, or forward in time ``{"on": "5-fold cv forward in time", ..., "split":
    "time", "by": column}`` (a retrain's crossval and a search record it alike)."""
    if by is None:
        return {"on": f"{folds}-fold cv", "folds": folds, "split": "shuffled"}
    return {"on": f"{folds}-fold cv forward in time", "folds": folds, "split": "time", "by": by}


def _time_groups(when: np.ndarray) -> np.ndarray:
    """Each row's rank among the distinct times of ``when`` (0, 1, ...: earliest first), the
    missing times ranked before all others."""
    missing = np.isnat(when)
    group = np.zeros(len(when), dtype=np.int64)
    if (~missing).any():
        _, inverse = np.unique(when[~missing], return_inverse=True)
        group[~missing] = inverse + (1 if missing.any() else 0)
    return group


def run(
    pipeline: Any,
    X: pd.DataFrame,
    y: pd.Series,
    kind: str | None,
    folds: int,
    progress: Report | None = None,
    by: str | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[str]]:
    """``(cv_score, out_of_fold, warnings)`` of ``folds`` fits of unfitted copies of
    ``pipeline`` on X, y (``plan`` chose ``folds``; ``by``: the date column that orders the
    folds forward in time, see ``splits``). ``progress`` hears the stage "cv": the folds done,
    and within a fold of a forest or boosting its trees or stages done.

    ``cv_score``: ``{"value", "std", "metric", "on": "5-fold cv", "folds", "split", "seconds"}``
    (``split``: ``"shuffled"``, or ``"time"`` with ``by``); ``out_of_fold``: a classifier's
    ``{"labels", "matrix"}`` confusion matrix, or a regressor's ``{"actual", "predicted"}``
    sample, of the rows scored. None (with a warning) when a fold cannot be fit."""
    rows = len(X)
    from sklearn.base import clone

    start = time.perf_counter()
    scores: list[float] = []
    oof: np.ndarray | None = None
    scored = np.zeros(rows, dtype=bool)
    planned, by, warns = splits(X, y, kind, folds, by)
    if len(planned) < 2:
        return None, None, [*warns, "No cross-validated score: fewer than 2 folds to score."]
    folds = len(planned)
    try:
        for i, (train, test) in enumerate(planned):
            if progress is not None:
                progress("cv", i / folds)
            model = clone(pipeline)
            fit_pipeline(model, X.iloc[train], y.iloc[train], _within(progress, i, folds))
            scores.append(float(model.score(X.iloc[test], y.iloc[test])))
            predicted = np.asarray(model.predict(X.iloc[test]))
            if oof is None:
                oof = np.empty(rows, dtype=predicted.dtype)
            oof[test] = predicted
            scored[test] = True
    except Exception as exc:  # the estimator cannot fit a fold (a class missing, say)
        return None, None, [f"No cross-validated score: a fold could not be fit ({reason(exc)})."]
    if progress is not None:
        progress("cv", 1.0)
    cv_score = {
        "value": float(np.mean(scores)),
        "std": float(np.std(scores)),
        "metric": "accuracy" if kind == "classifier" else "r2",
        **folds_record(folds, by),
        "seconds": round(time.perf_counter() - start, 3),
    }
    try:
        summary = _summary(kind, y[scored], oof[scored]) if oof is not None else None
    except Exception:  # labels a confusion matrix cannot take: the score still stands
        summary = None
    return cv_score, summary, warns


def _within(progress: Report | None, fold: int, folds: int) -> Report | None:
    """The progress report of fold ``fold``'s fit: its trees or boosting stages (the fit's own
    fractions, see progress.py) as a share of the "cv" stage, so that the folds of a slow
    forest move as its fit does; fractions the fit cannot give (None) are not reported."""
    if progress is None:
        return None

    def report(_stage: str, fraction: float | None) -> None:
        if fraction is not None:
            progress("cv", (fold + fraction) / folds)

    return report


def _summary(kind: str | None, y: pd.Series, oof: np.ndarray) -> dict[str, Any]:
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
