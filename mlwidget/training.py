"""Training: options and a table in, a fitted pipeline out. No store, no HTTP, no widgets.

``fit`` is pure: it reads nothing but its arguments and writes nothing, so it runs the same in
the server, a kernel, a worker process or on a Dask cluster; ``MLModel`` commits what it
returns. Everything that can be checked is checked before the fit starts (the metric, the
encoded matrix's size), and every failure of the estimator is a clear ``MLWidgetError``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
import warnings as _warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sklearn

from . import boosting, crossval, prepared_frames, versions
from . import estimators as est
from . import limits as limits_
from . import options as opt
from .errors import BadRequest, MLWidgetError, PayloadTooLarge, reason
from .progress import Report, fit_pipeline

SCORE_ROWS = 20_000  # the training score of a larger table is computed on a sample this size


@dataclass(frozen=True)
class Fitted:
    """What a fit produced: the pipeline, the feature schema it expects, the warnings seen,
    its metadata (``fitted`` in the model info, without ``trained_at``) and the score asked
    for with ``metric`` (None if none was). A worker process beside the store writes the
    pipeline's model file itself and sends back its path (``staged``), not the pipeline."""

    pipeline: Any
    features: list[dict[str, Any]]
    warnings: list[str]
    fitted: dict[str, Any]
    asked: float | None = None
    staged: str | None = None  # the model file a worker process wrote (then pipeline is None)
    cv_folds: int | None = None  # the cross-validation to run after the commit (crossval.plan)
    # the table's rows and columns, when it was read where the fit ran (a source)
    data_rows: int | None = None
    data_columns: tuple[str, ...] | None = None

    def of_table(self, table: pd.DataFrame) -> Fitted:
        """This fit, noting the rows and columns of ``table`` (a source read by the worker)."""
        columns = tuple(str(c) for c in table.columns)
        return dataclasses.replace(self, data_rows=len(table), data_columns=columns)

    def discard(self) -> None:
        """Remove the staged model file, if it was not committed (moved into the store)."""
        if self.staged:
            with contextlib.suppress(OSError):
                os.unlink(self.staged)


def fit(
    options: Mapping[str, Any],
    table: pd.DataFrame,
    allowed_classes: Iterable[str] = (),
    metric: str | None = None,
    progress: Report | None = None,
    known_hash: str | None = None,
    limits: limits_.Limits | None = None,
) -> Fitted:
    """Fit the estimator ``options`` describe (class, params, target_col, column options) on
    ``table``; ``metric`` (a scikit-learn scorer name) is scored on the training rows.

    ``progress(stage, fraction)`` hears the stages ("fit", then "score") and, for forests and
    gradient boosting, the fraction of the fit done (see progress.py); it may raise to stop.
    ``known_hash`` is ``table``'s ``data_hash`` when the caller has it (the stored data's).
    ``limits``: the ceilings (max_categories, max_matrix_cells, the cv ones) to fit under;
    None: ``limits.current()``."""
    # The estimator's parameters were validated when it was made (make_estimator) and the
    # pipeline around it is ours: scikit-learn need not validate them again at every fit, fold
    # and score (about a tenth of a small model's fit).
    with sklearn.config_context(skip_parameter_validation=True):
        return _fit(
            options,
            table,
            tuple(allowed_classes),
            metric,
            progress,
            known_hash,
            limits_.as_limits(limits),
        )


@dataclass(frozen=True)
class Prepared:
    """An unfitted pipeline and the frame it fits: what a fit and its cross-validation share."""

    cls: type
    kind: str | None
    estimator: Any
    pipeline: Any
    X: pd.DataFrame
    y: Any
    features: list[dict[str, Any]]
    warnings: list[str]


def prepare(
    options: Mapping[str, Any],
    table: pd.DataFrame,
    allowed_classes: tuple[str, ...],
    limits: limits_.Limits,
    metric: str | None = None,
    fingerprint: str | None = None,
) -> Prepared:
    """The estimator ``options`` describe in its pipeline (imputers, encoders), unfitted, and
    the training frame split into X and y; every check that can fail before a fit.
    ``fingerprint``: ``table``'s ``data_hash``, if known: the frame this process prepared
    for the same rows and options is used again (prepared_frames.py)."""
    cls = est.resolve_class(options["class"], allowed_classes)
    kind = est.estimator_kind(cls)
    estimator = est.make_estimator(cls, options.get("params") or {}, allowed_classes)
    X, y, features, warns = prepared_frames.training_frame(table, options, kind, fingerprint)
    if metric:
        check_metric(metric, kind, y is not None)  # before anything is fitted
    warns += est.bound_threads(estimator)
    cats = [f["name"] for f in features if f["kind"] == "category"]
    nums = [f["name"] for f in features if f["kind"] == "number"]
    dates = [f["name"] for f in features if f["kind"] == "date"]
    width_of_dates = [d for d in dates for _ in range(5)]  # five numbers per date (dates.PARTS)
    grouped, width_warns = _encoding_width(X, cats, nums + width_of_dates, limits)
    warns += width_warns
    pipeline = est.build_pipeline(
        boosting.for_labels(estimator, y),  # XGBoost's classifiers learn codes 0..k-1 only
        cats,
        nums,
        max_categories=limits.max_categories if grouped else None,
        dates=dates,
    )
    return Prepared(cls, kind, estimator, pipeline, X, y, features, warns)


def cross_validate(
    options: Mapping[str, Any],
    table: pd.DataFrame,
    allowed_classes: Iterable[str],
    folds: int,
    progress: Report | None = None,
    limits: limits_.Limits | None = None,
    fingerprint: str | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[str]]:
    """``(cv_score, out_of_fold, warnings)``: ``folds`` fits of the pipeline ``options``
    describe on parts of ``table`` (``crossval.run``), after the fit itself was committed
    (``fingerprint``: ``table``'s ``data_hash``, as the fit recorded it)."""
    ceilings = limits_.as_limits(limits)
    with sklearn.config_context(skip_parameter_validation=True), _warnings.catch_warnings():
        _warnings.simplefilter("ignore")  # the folds repeat the fit's own warnings
        ready = prepare(options, table, tuple(allowed_classes), ceilings, None, fingerprint)
        by = time_column(ready.features)
        return crossval.run(ready.pipeline, ready.X, ready.y, ready.kind, folds, progress, by)


def time_column(features: Iterable[Mapping[str, Any]]) -> str | None:
    """The date column that orders a model's cross-validation forward in time (the first it
    reads), or None: folds shuffled (crossval.py)."""
    return next((str(f["name"]) for f in features if f.get("kind") == "date"), None)


def _fit(
    options: Mapping[str, Any],
    table: pd.DataFrame,
    allowed_classes: tuple[str, ...],
    metric: str | None,
    progress: Report | None,
    known_hash: str | None,
    limits: limits_.Limits,
) -> Fitted:
    fingerprint = known_hash or data_hash(table)
    ready = prepare(options, table, allowed_classes, limits, metric, fingerprint)
    cls, kind, pipeline = ready.cls, ready.kind, ready.pipeline
    X, y, features, warns = ready.X, ready.y, ready.features, list(ready.warnings)
    started = time.perf_counter()
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        try:
            Xt = fit_pipeline(pipeline, X, y, progress)
        except MLWidgetError:
            raise
        except MemoryError as exc:
            raise PayloadTooLarge(
                f"Training {cls.__name__} needs more memory than this server has ({exc}). "
                "Choose smaller parameters (fewer or smaller layers, trees, components) or "
                "less data."
            ) from None
        except OverflowError as exc:
            raise BadRequest(
                f"Training {cls.__name__} failed: a parameter is too large ({exc}). Use a "
                "smaller value."
            ) from None
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"Training {cls.__name__} failed: {reason(exc)}") from None
        except Exception as exc:  # the estimator's own failure on this data or parameters
            raise BadRequest(
                f"Training {cls.__name__} failed ({type(exc).__name__}: {reason(exc)}). This "
                "estimator may need input that a table with one target column cannot give "
                "(several targets, text, a precomputed matrix); choose another estimator or "
                "other parameters."
            ) from None
    for w in caught:
        if issubclass(w.category, UserWarning | RuntimeWarning) or "Convergence" in str(w.category):
            text = str(w.message).splitlines()[0][:300]
            if text not in warns:
                warns.append(text)
    fit_seconds = time.perf_counter() - started
    cv_folds, cv_warns = crossval.plan(X, y, kind, fit_seconds, options.get("cv_folds"), limits)
    warns += cv_warns
    if progress is not None:
        progress("score", None)
    score, scored_by, scored_rows = training_score(pipeline, X, y, kind, Xt)
    asked = None
    if metric:  # the score asked for, on the training rows: an error commits nothing
        from sklearn.metrics import get_scorer

        try:
            asked = float(get_scorer(metric)(pipeline, X, y))
        except (ValueError, TypeError, AttributeError) as exc:
            raise BadRequest(f"Could not compute {metric}: {reason(exc)}") from None
    scored = (score, scored_by, scored_rows)
    fitted = fit_record(options, ready, len(X), scored, fingerprint, fit_seconds, started)
    return Fitted(pipeline, features, warns, fitted, asked, cv_folds=cv_folds)


def fit_record(
    options: Mapping[str, Any],
    ready: Prepared,
    rows: int,
    scored: tuple[float | None, str | None, int],
    fingerprint: str,
    fit_seconds: float,
    started: float,
) -> dict[str, Any]:
    """``Fitted.fitted``: what a model's info says of a fit of ``ready`` on ``rows`` rows
    (``scored``: ``training_score``'s answer; ``fingerprint``: the data's hash; ``started``:
    the ``perf_counter`` the fit began at). The data-parallel fit on Dask (jobs/dask_fit.py)
    makes it too, so that both record the same."""
    score, scored_by, scored_rows = scored
    y = ready.y
    libraries = versions.libraries()
    if boosting.is_xgboost(ready.cls):  # the pickled pipeline needs it too
        libraries["xgboost"] = str(getattr(sys.modules.get("xgboost"), "__version__", ""))
    return {
        "model": ready.cls.__name__,
        "params": est.to_jsonable(ready.estimator.get_params(deep=False)),
        "kind": ready.kind,
        "score": score,
        "metric": scored_by,
        "rows": rows,
        "target_col": options.get("target_col") if y is not None else None,
        "target_dtype": str(y.dtype) if y is not None else None,
        "config": {k: options.get(k) for k in opt.CONFIG_KEYS},
        "sklearn_version": sklearn.__version__,
        "score_on": "training",
        "score_rows": scored_rows,
        "cv_score": None,  # filled after the commit (crossval.pending until then)
        "out_of_fold": None,
        "data_hash": fingerprint,
        "timings": {
            "fit": round(fit_seconds, 3),
            "cv": None,
            "total": round(time.perf_counter() - started, 3),
        },
        "libraries": libraries,
    }


def training_score(
    pipeline: Any,
    X: pd.DataFrame,
    y: Any,
    kind: str | None,
    Xt: Any,
) -> tuple[float | None, str | None, int]:
    """The fitted pipeline's score on its training rows (accuracy, r2, or an unsupervised
    model's own score), the metric's name and how many rows were scored: all of them up to
    ``SCORE_ROWS``, else a fixed random sample of that many (the training score of a large table
    is a diagnostic, ``cv_score`` the honest one; scoring every row of a 100k-row forest took
    longer than a sixth of its fit). ``Xt``, the rows as the fit transformed them (what
    ``fit_pipeline`` returns), spares transforming them again: the estimator predicts (or
    scores) them directly, the same answers as the pipeline's."""
    from sklearn.metrics import r2_score

    if len(X) > SCORE_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(len(X), SCORE_ROWS, replace=False))
        X, y = X.iloc[rows], (y.iloc[rows] if y is not None else None)
        Xt = Xt[rows]
    estimator = pipeline.steps[-1][1]
    try:
        if y is None:  # what Pipeline.score(X) gives, without transforming X again
            if not hasattr(estimator, "score"):
                return None, None, 0
            return float(estimator.score(Xt)), "score", len(X)
        metric, scorer = ("accuracy", accuracy) if kind == "classifier" else ("r2", r2_score)
        return float(scorer(y, estimator.predict(Xt))), metric, len(X)
    except Exception:  # a model that cannot score itself still trains
        return None, None, 0


def accuracy(y: Any, predicted: Any) -> float:
    """``sklearn.metrics.accuracy_score(y, predicted)`` for one column of labels: the share
    predicted right. Without its checks of the labels' types (half a millisecond, a twentieth
    of a small model's fit), which a classifier's own predictions of its training labels pass;
    anything else (labels in several columns) is left to it."""
    truth, guess = np.asarray(y), np.asarray(predicted)
    if truth.ndim != 1 or truth.shape != guess.shape or not len(truth):
        from sklearn.metrics import accuracy_score

        return float(accuracy_score(y, predicted))
    return float(np.mean(truth == guess))


def data_hash(table: pd.DataFrame) -> str:
    """A short fingerprint of a table's values and columns: the same data, the same hash."""
    import hashlib

    digest = hashlib.sha256()
    digest.update(repr([str(c) for c in table.columns]).encode())
    try:
        digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    except TypeError:  # unhashable cells (lists): their text
        digest.update(table.astype(str).to_csv(index=False).encode())
    return digest.hexdigest()[:16]


def check_metric(metric: str, kind: str | None, supervised: bool) -> None:
    from sklearn.metrics import get_scorer_names

    if not supervised:
        raise BadRequest(
            f"Expected no metric for an unsupervised model, got {metric!r}; it is scored with "
            "its own score()."
        )
    if metric not in get_scorer_names():
        raise BadRequest(
            f"Expected a scikit-learn scorer name such as accuracy, f1_weighted, roc_auc, r2 or "
            f"neg_mean_absolute_error; got {metric!r}. Nothing was trained or stored."
        )


def _encoding_width(
    X: pd.DataFrame, cats: list[str], nums: list[str], limits: limits_.Limits
) -> tuple[bool, list[str]]:
    """Whether categoricals must be grouped (some has more than ``limits.max_categories``
    values), with a warning per grouped column; a 413 if the encoded matrix would still be
    over ``limits.max_matrix_cells``. Checked before the matrix exists."""
    cap = limits.max_categories
    counts = {c: int(X[c].nunique()) for c in cats}
    grouped = [c for c, n in counts.items() if n > cap]
    warns = [
        f"Column {c!r} has {counts[c]} distinct values: the {cap - 1} most frequent are one-hot "
        "encoded and the rest are grouped as one infrequent category "
        "(MLWidgetApp.max_categories)."
        for c in grouped
    ]
    width = len(nums) + sum(min(n, cap) if grouped else n for n in counts.values())
    cells = width * len(X)
    if cells > limits.max_matrix_cells:
        raise PayloadTooLarge(
            f"Training on {len(X)} rows x {width} encoded columns ({cells:,} cells) is over this "
            f"server's ceiling of {limits.max_matrix_cells:,} cells "
            "(MLWidgetApp.max_matrix_cells). Use fewer rows, exclude wide categorical columns, "
            "or raise the ceiling."
        )
    return bool(grouped), warns
