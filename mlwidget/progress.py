"""Fitting a pipeline with progress: trees or boosting stages done, where the estimator allows.

``fit_pipeline(pipeline, X, y, report)`` fits exactly as ``pipeline.fit(X, y)`` does and calls
``report(stage, fraction)`` along the way (``fraction`` in 0..1, or None when the estimator
cannot say how far it is). A report may raise to stop the fit (a job's cancel or timeout, in
the thread executor); it is called between units of work, never inside one.

- Forests (random forests, extra trees) grow their trees in chunks with ``warm_start`` on the
  transformed matrix: with an integer ``random_state`` the trees are the ones one ``fit`` grows
  (scikit-learn draws every tree's seed from the same sequence), so the model is the same. The
  first chunk is one tree per core; the next ones are sized from the time the trees so far
  took, so that a report comes about every ``EVERY`` seconds, and never more than a tenth of
  the forest (``CHUNKS``): a fast forest reports ten times, a slow one every tree or two.
- Gradient boosting reports every stage through ``fit(monitor=...)``, XGBoost every round (at
  most a hundred reports) through a training callback, removed again once the fit is done so
  that the model pickles as a plain fit's.
- Anything else fits in one call and reports None until it is done.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

Report = Callable[[str, "float | None"], None]

CHUNKS = 10  # the fewest progress reports a forest makes
EVERY = 1.0  # seconds a forest's chunk of trees aims to take


def _on_dask() -> bool:
    """Whether joblib runs on a Dask cluster here: then a forest fits in one call, as the
    cluster then receives its training matrix once, not once per chunk of trees."""
    try:
        from joblib.parallel import get_active_backend

        return type(get_active_backend()[0]).__name__ == "DaskDistributedBackend"
    except Exception:
        return False


def _forest(estimator: Any) -> bool:
    from sklearn.ensemble._forest import BaseForest

    return (
        not _on_dask()
        and isinstance(estimator, BaseForest)
        and not estimator.warm_start
        and isinstance(estimator.n_estimators, int)
        and estimator.n_estimators >= 2
        # scikit-learn warns that these presets are not meant for warm_start
        and getattr(estimator, "class_weight", None) not in ("balanced", "balanced_subsample")
        # an out-of-bag score without bootstrap is refused at once by the one fit
        and not (getattr(estimator, "oob_score", False) and not estimator.bootstrap)
    )


def _boosting(estimator: Any) -> bool:
    from sklearn.ensemble._gb import BaseGradientBoosting

    return isinstance(estimator, BaseGradientBoosting)


def _xgboost(estimator: Any) -> Any:
    """The XGBoost estimator ``estimator`` is (or wraps: boosting.LabelEncoded), else None."""
    from .boosting import LabelEncoded, is_xgboost

    inner = estimator.estimator if isinstance(estimator, LabelEncoded) else estimator
    return inner if is_xgboost(type(inner)) else None


def _fit_rounds(final: Any, Xt: Any, y: Any, report: Report) -> None:
    """Fit an XGBoost estimator (or its label wrapper), reporting its boosting rounds."""
    from xgboost.callback import TrainingCallback

    inner = _xgboost(final)
    total = int(inner.get_params().get("n_estimators") or 100)  # XGBoost's own default
    step = max(1, -(-total // 100))  # at most a hundred reports

    class Rounds(TrainingCallback):  # type: ignore[misc]
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if (epoch + 1) % step == 0:
                report("fit", min(1.0, (epoch + 1) / total))
            return False  # never stops the training (a report raises to stop it)

    given = inner.get_params().get("callbacks")
    inner.set_params(callbacks=[*(given or []), Rounds()])
    try:
        final.fit(Xt, y)
    finally:  # the fitted model keeps the callbacks it was given, not ours
        inner.set_params(callbacks=given)
        fitted = getattr(final, "estimator_", None)  # LabelEncoded fits a clone
        if fitted is not None:
            fitted.set_params(callbacks=given)
    report("fit", 1.0)


def chunk_size(seconds_per_tree: float, workers: int, most: int) -> int:
    """Trees in a forest's next chunk: about ``EVERY`` seconds of them at the speed seen so
    far, a multiple of ``workers`` (the cores that grow them side by side) when more than
    one, and between 1 and ``most``."""
    if seconds_per_tree <= 0:
        return most
    trees = int(EVERY / seconds_per_tree)
    if trees >= workers:
        trees -= trees % workers
    return max(1, min(most, trees))


def _grow_forest(forest: Any, Xt: Any, y: Any, report: Report) -> None:
    """Grow ``forest``'s trees in chunks (see the module's note), reporting after each."""
    from joblib import effective_n_jobs

    total = forest.n_estimators
    # (a RandomTreesEmbedding has no out-of-bag score to set)
    oob = forest.get_params().get("oob_score")
    scores = {} if oob is None else {"oob_score": oob}
    most = max(1, math.ceil(total / CHUNKS))
    workers = max(1, effective_n_jobs(forest.n_jobs))
    size = min(most, workers)  # the first chunk measures the speed
    forest.set_params(warm_start=True)
    started = time.perf_counter()
    try:
        grown = 0
        while grown < total:
            grown = min(total, grown + size)
            # the out-of-bag score is computed once, over every tree, with the last chunk
            last = {} if oob is None else {"oob_score": oob if grown == total else False}
            forest.set_params(n_estimators=grown, **last)
            forest.fit(Xt, y)
            report("fit", grown / total)
            size = chunk_size((time.perf_counter() - started) / grown, workers, most)
    finally:
        forest.set_params(warm_start=False, n_estimators=total, **scores)


def fit_pipeline(pipeline: Any, X: Any, y: Any, report: Report | None = None) -> Any:
    """Fit ``pipeline`` on ``X`` (and ``y`` unless None), reporting progress to ``report``, as
    ``Pipeline.fit`` does: its transform steps, fitted in place, then its estimator on their
    output. Returns that output (the matrix the estimator was fitted on), for the training
    score to use without transforming the rows again."""
    name, final = pipeline.steps[-1]
    chunked = report is not None and _forest(final)
    if report is not None:
        rounds = chunked or _boosting(final) or _xgboost(final) is not None
        report("fit", 0.0 if rounds else None)
    Xt = pipeline[:-1].fit_transform(X, y)  # the same step objects: fitted in place
    if chunked:
        assert report is not None
        _grow_forest(final, Xt, y, report)
        return Xt
    if report is not None and _xgboost(final) is not None:
        _fit_rounds(final, Xt, y, report)
        return Xt
    if report is not None and _boosting(final):
        total = final.n_estimators

        def monitor(i: int, _estimator: Any, _locals: Any) -> bool:
            report("fit", min(1.0, (i + 1) / total))
            return False

        final.fit(Xt, y, monitor=monitor)
        return Xt
    if y is not None:
        final.fit(Xt, y)
    else:
        final.fit(Xt)
    if report is not None:
        report("fit", 1.0)
    return Xt
