"""Training that uses the whole Dask cluster: a retrain that runs on a Dask worker (``worker.fit``
inside ``worker.dask_task``) is handed here first (``fit_on_dask``).

- **XGBoost** (``XGBClassifier``, ``XGBRegressor``) trains data-parallel through
  ``xgboost.dask``: the training rows are laid in partitions over all the workers (a source's
  partitions read by the workers themselves, a table split and sent to them: dask_parts.py),
  the mlwidget preprocessing (imputers, scaling, one-hot encoding) transforms each partition
  where it is, and ``DaskXGBClassifier`` / ``DaskXGBRegressor`` train one booster with a task
  on every worker that holds partitions. The booster is then put into a plain
  ``XGBClassifier`` / ``XGBRegressor`` at the end of the usual pipeline, so the stored model is
  an ordinary scikit-learn pipeline that predicts anywhere (labels other than 0..k-1 through
  ``boosting.LabelEncoded``, as a local fit does).
- **Estimators with ``n_jobs``** (forests, bagging, searches...) whose ``n_jobs`` was not given
  fit with ``n_jobs=-1`` under joblib's dask backend, so a forest's trees are built on every
  worker; the stored model keeps the ``n_jobs`` its options say.
- Anything else, and every job off a Dask worker (process and thread executors): ``None``,
  and ``worker.fit`` fits as it always did.

The job's task leaves its worker's thread pool while the sub-tasks run (``worker_client``;
joblib's dask backend does it by itself), so with one thread per worker the job's own worker
works on its share too. The result is the ``training.Fitted`` a local fit gives (the same
``fitted`` record, through ``training.fit_record``), so the commit is unchanged.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from .. import boosting, crossval, datasets, limits, training
from .. import estimators as est
from ..errors import BadRequest, MLWidgetError, PayloadTooLarge, reason
from . import dask_parts

CLASS_CAP = 1_000  # rows per class the cross-validation plan of a source is judged on


def on_dask_worker() -> bool:
    """Whether this runs in a task on a Dask worker (not in a client or another process)."""
    if "distributed" not in sys.modules:  # never imported: not a Dask worker
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def fit_on_dask(payload: dict[str, Any], report: Callable[..., None]) -> Any:
    """The retrain ``payload`` fitted over the whole Dask cluster (a ``training.Fitted``), or
    None when it is not on a Dask worker or has nothing to spread (``worker.fit`` fits it)."""
    if not on_dask_worker():
        return None
    options = payload["options"]
    cls = est.resolve_class(options["class"], tuple(payload["allowed_classes"]))
    if boosting.is_xgboost(cls):
        return fit_xgboost(payload, report, cls)
    return spread_jobs(payload, report, cls)


# ------------------------------------------------------------------ n_jobs over the cluster


def spread_jobs(payload: dict[str, Any], report: Callable[..., None], cls: type) -> Any:
    """An estimator with ``n_jobs`` left unset, fitted with ``n_jobs=-1`` under joblib's dask
    backend (its parallel parts, a forest's trees, on every worker); None for any other."""
    import joblib

    params = dict(payload["options"].get("params") or {})
    try:
        default = inspect.signature(cls).parameters["n_jobs"].default
    except (KeyError, TypeError, ValueError):  # no n_jobs: one task, as before
        return None
    if params.get("n_jobs", default) is not None:
        return None  # given: 1 keeps it on one worker, others spread already (worker.dask_task)
    options = {**payload["options"], "params": {**params, "n_jobs": -1}}
    # (joblib's dask backend leaves the worker's thread pool itself while it waits: inside
    # worker_client() too, its second secede fails with a KeyError)
    with limits.using(payload.get("limits")) as ceilings, joblib.parallel_config(backend="dask"):
        table = datasets.materialize(payload["table"])
        fitted = training.fit(
            options,
            table,
            payload["allowed_classes"],
            metric=payload["metric"],
            progress=report,
            known_hash=payload.get("data_hash"),
            limits=ceilings,
        )
    final = fitted.pipeline.steps[-1][1]
    final.set_params(n_jobs=default)  # the model stored is the one its options describe
    record = {**fitted.fitted, "params": est.to_jsonable(final.get_params(deep=False))}
    # (what the estimator said of the n_jobs it was given here, "no effect with liblinear"...,
    # is not the user's concern)
    warns = [w for w in fitted.warnings if "n_jobs" not in w]
    fitted = dataclasses.replace(fitted, fitted=record, warnings=warns)
    if isinstance(payload["table"], datasets.Dataset):
        fitted = fitted.of_table(table)
    return fitted


# ------------------------------------------------------------------ XGBoost, data-parallel


def fit_xgboost(payload: dict[str, Any], report: Callable[..., None], cls: type) -> Any:
    """XGBoost trained over the partitions of the training rows on every worker."""
    import sklearn
    from distributed import worker_client

    started = time.perf_counter()
    report("fit", None)
    with (
        limits.using(payload.get("limits")) as ceilings,
        sklearn.config_context(skip_parameter_validation=True),
        worker_client() as client,
    ):
        workers = sorted(client.scheduler_info()["workers"])
        options, table = payload["options"], payload["table"]
        allowed, metric = tuple(payload["allowed_classes"]), payload["metric"]
        if isinstance(table, datasets.Dataset):
            laid = dask_parts.from_source(
                client, workers, options, table, allowed, ceilings, metric
            )
        else:
            laid = dask_parts.from_table(
                client, workers, options, table, allowed, ceilings, metric,
                payload.get("data_hash"),
            )  # fmt: skip
        ready = laid.ready
        final, rows, counts, caught = _train(client, cls, ready, laid)
        fit_seconds = time.perf_counter() - started  # reading and preprocessing too
        report("fit", 1.0)
    ready.pipeline.set_params(estimator=final)
    warns = list(ready.warnings) + laid.notes
    for w in caught:
        if issubclass(w.category, UserWarning | RuntimeWarning):
            text = str(w.message).splitlines()[0][:300]
            if text not in warns:
                warns.append(text)
    cv_folds, cv_warns = _plan(laid, ready.kind, rows, counts, fit_seconds, options, ceilings)
    report("score", None)
    scored = training.training_score(ready.pipeline, laid.X, laid.y, ready.kind, laid.Xt)
    asked = _asked(metric, ready.pipeline, laid.X, laid.y)
    record = training.fit_record(
        options, ready, rows, scored, laid.fingerprint, fit_seconds, started
    )
    return training.Fitted(
        ready.pipeline, ready.features, warns + cv_warns, record, asked, cv_folds=cv_folds,
        data_rows=laid.data_rows, data_columns=laid.data_columns,
    )  # fmt: skip


def _train(
    client: Any, cls: type, ready: training.Prepared, laid: dask_parts.Laid
) -> tuple[Any, int, np.ndarray | None, list[Any]]:
    """``(estimator, rows, class counts, warnings)``: the booster DaskXGB trains on the laid
    partitions, in a plain XGBoost estimator (wrapped for labels other than 0..k-1)."""
    from xgboost import dask as dxgb

    classifier = ready.kind == "classifier"
    stats = client.gather(client.map(dask_parts.labels, laid.parts, key=dask_parts.name("rows")))
    kept = [(part, int(n)) for part, (n, _, _) in zip(laid.parts, stats, strict=True) if n]
    if not kept:
        raise BadRequest(
            "No training rows are left after dropping missing values and duplicates. Set "
            "dropna=false, or fix the data."
        )
    rows = sum(n for _, n in kept)
    classes, counts = None, None
    if classifier:
        found = pd.concat([pd.Series(c, index=v) for _, v, c in stats if len(v)])
        totals = found.groupby(level=0).sum()
        classes, counts = np.asarray(totals.index), totals.to_numpy()
    width = laid.Xt.shape[1]
    X, y = dask_parts.arrays([p for p, _ in kept], [n for _, n in kept], width, classes)
    params = ready.estimator.get_params(deep=False)
    trainer = (dxgb.DaskXGBClassifier if classifier else dxgb.DaskXGBRegressor)(**params)
    trainer.client = client
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            trainer.fit(X, y)
        except MLWidgetError:
            raise
        except MemoryError as exc:
            raise PayloadTooLarge(
                f"Training {cls.__name__} needs more memory than the Dask workers have ({exc})."
                " Choose smaller parameters or less data, or give the workers more memory."
            ) from None
        except (ValueError, TypeError) as exc:
            raise BadRequest(
                f"Training {cls.__name__} on the Dask cluster failed: {reason(exc)}"
            ) from None
    booster = trainer.get_booster()
    final = cls(**params)
    final.load_model(bytearray(booster.save_raw(raw_format="ubj")))
    if classifier and not boosting.label_codes(classes):
        final = boosting.LabelEncoded.fitted(final, classes)
    return final, rows, counts, list(caught)


def _plan(
    laid: dask_parts.Laid,
    kind: str | None,
    rows: int,
    counts: np.ndarray | None,
    fit_seconds: float,
    options: Any,
    ceilings: Any,
) -> tuple[int | None, list[str]]:
    """The cross-validation to run after the commit, as ``crossval.plan`` decides it for a
    local fit: on the table itself, or for a source on its row and class counts."""
    folds = options.get("cv_folds")
    if laid.data_rows is None:  # a table: all its rows are here
        return crossval.plan(laid.X, laid.y, kind, fit_seconds, folds, ceilings)
    # a source: plan() reads only len(X) and, for a classifier, the smallest class's count
    frame = pd.DataFrame(index=pd.RangeIndex(rows))
    if counts is None:
        y = pd.Series(np.zeros(1))
    else:
        y = pd.Series(np.repeat(np.arange(len(counts)), np.minimum(counts, CLASS_CAP)))
    return crossval.plan(frame, y, kind, fit_seconds, folds, ceilings)


def _asked(metric: str | None, pipeline: Any, X: pd.DataFrame, y: Any) -> float | None:
    """The score the retrain asked for, on the rows the training score is on."""
    if not metric:
        return None
    from sklearn.metrics import get_scorer

    try:
        return float(get_scorer(metric)(pipeline, X, y))
    except (ValueError, TypeError, AttributeError) as exc:
        raise BadRequest(f"Could not compute {metric}: {reason(exc)}") from None
