"""The work of a search job, where the work runs (a worker process, a thread, a Dask worker):
scikit-learn's ``GridSearchCV`` (or ``RandomizedSearchCV`` with a budget) over the model's
pipeline, built as training builds it, on the folds a retrain's cross-validation uses; then the
best candidate refit on all the rows by the retrain's own fit (``jobs.worker.fit``: the same
model file, metadata and warnings a retrain of those parameters gives).

Progress is reported once per candidate and fold (stage ``search``), then the refit's
(``fit``, ``score``). The candidates are fit one after another in the job's process
(``n_jobs=1``): each report reaches the job, and a cancel stops the process that fits them.
"""

from __future__ import annotations

import dataclasses
import re
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from . import estimators as est
from .errors import BadRequest, MLWidgetError, reason

STEP = "estimator"  # the estimator's step in the pipeline (estimators.build_pipeline)
FOLD_DEFAULT = 5  # folds when neither the request, the model nor the ceilings give a number


@dataclasses.dataclass(frozen=True)
class Searched:
    """What a search's work returns: the best candidate's refit (a ``training.Fitted``, its
    model file staged by a worker process) and the search's summary (the job's answer)."""

    fitted: Any
    summary: dict[str, Any]

    def discard(self) -> None:
        """Remove the staged model file if it was not committed (see ``Fitted.discard``)."""
        self.fitted.discard()


def best_options(options: Mapping[str, Any], best: Mapping[str, Any]) -> dict[str, Any]:
    """The model's options with the best candidate's parameters (JSON forms) in them."""
    return {**options, "params": {**(options.get("params") or {}), **best}}


def work(payload: dict[str, Any], report: Callable[..., None]) -> Searched:
    """The search of ``payload["grid"]`` (typed values by parameter), then the refit of the
    best candidate: a ``Searched``."""
    from . import crossval, limits
    from .jobs import worker

    with limits.using(payload.get("limits")) as ceilings:
        summary = search(payload, report, ceilings)
    options = best_options(payload["options"], summary["best"]["params"])
    fitted = worker.fit({**payload, "options": options, "metric": None}, report)
    cv_score = {
        "value": summary["best"]["score"],
        "std": summary["best"]["std"],
        "metric": summary["metric"],
        **crossval.folds_record(summary["folds"], summary.get("by")),
        "seconds": summary["seconds"],
        "search": True,
    }
    timings = {**(fitted.fitted.get("timings") or {}), "cv": summary["seconds"]}
    record = {**fitted.fitted, "cv_score": cv_score, "timings": timings}
    return Searched(dataclasses.replace(fitted, fitted=record, cv_folds=None), summary)


def search(payload: dict[str, Any], report: Callable[..., None], ceilings: Any) -> dict[str, Any]:
    """Cross-validate every candidate of the grid (or ``n_iter`` drawn from it): the summary."""
    import numpy as np
    from sklearn.metrics import check_scoring
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    from . import crossval, training

    options, metric = payload["options"], payload.get("search_metric")
    ready = training.prepare(
        options,
        payload["table"],
        tuple(payload["allowed_classes"]),
        ceilings,
        metric,
        payload.get("data_hash"),
    )
    folds = fold_plan(ready.X, ready.y, ready.kind, payload.get("cv"), options, ceilings)
    # the folds a retrain's cross-validation makes (crossval.splits): the best candidate's
    # score is the cv_score a retrain with its parameters records
    planned, by, why = crossval.splits(
        ready.X, ready.y, ready.kind, folds, training.time_column(ready.features)
    )
    if len(planned) < 2:
        raise BadRequest(
            f"Expected at least 2 folds to compare candidates on, got {len(planned)}: "
            f"{' '.join(why)} Search a model with more rows of each class. Nothing was stored."
        )
    folds = len(planned)
    grid = {f"{STEP}__{key}": list(values) for key, values in payload["grid"].items()}
    n_iter = payload.get("n_iter")
    candidates = n_iter or int(np.prod([len(v) for v in grid.values()]))
    total, done = candidates * folds, [0]
    base = check_scoring(ready.pipeline, scoring=metric)

    def scorer(estimator: Any, X: Any, y: Any) -> float:  # once per candidate and fold
        value = base(estimator, X, y)
        done[0] += 1
        report("search", min(1.0, done[0] / total))
        return value

    common: dict[str, Any] = {
        "scoring": scorer,
        "cv": planned,
        "refit": False,  # the best is refit by the retrain's fit (jobs.worker.fit)
        "n_jobs": 1,
        "error_score": np.nan,
    }
    if n_iter:
        searcher: Any = RandomizedSearchCV(
            ready.pipeline, grid, n_iter=n_iter, random_state=0, **common
        )
    else:
        searcher = GridSearchCV(ready.pipeline, grid, **common)
    report("search", 0.0)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            searcher.fit(ready.X, ready.y)
        except MLWidgetError:
            raise
        except ValueError as exc:  # every fit failed (scikit-learn raises then)
            raise BadRequest(
                f"Every candidate of the search failed to fit: {failures(str(exc))}. Change "
                "the grid's values (some combinations of parameters do not go together). "
                "Nothing was stored."
            ) from None
    seconds = round(time.perf_counter() - started, 3)
    report("search", 1.0)
    summary = summarize(
        searcher.cv_results_, metric or default_metric(ready.kind), folds, caught, seconds, n_iter
    )
    record = crossval.folds_record(folds, by)
    return {**summary, **{k: record[k] for k in ("split", "by") if k in record}}


def summarize(
    results: Mapping[str, Any],
    metric: str,
    folds: int,
    caught: list[warnings.WarningMessage],
    seconds: float,
    n_iter: int | None,
) -> dict[str, Any]:
    """The job's account of the search from ``cv_results_``: every candidate (in the order
    tried) with its mean and std score over the folds and its rank, and the best."""
    import numpy as np

    candidates = []
    for params, mean, std, rank in zip(
        results["params"],
        results["mean_test_score"],
        results["std_test_score"],
        results["rank_test_score"],
        strict=True,
    ):
        ok = bool(np.isfinite(mean))
        candidates.append(
            {
                "params": {k.split("__", 1)[1]: est.to_jsonable(v) for k, v in params.items()},
                "mean_score": float(mean) if ok else None,
                "std_score": float(std) if ok else None,
                "rank": int(rank),
            }
        )
    scored = [c for c in candidates if c["mean_score"] is not None]
    texts = [str(w.message) for w in caught]
    if not scored:
        detail = "; ".join(dict.fromkeys(failures(t) for t in texts)) or "no score"
        raise BadRequest(
            f"No candidate of the search could be scored with {metric}: {detail}. Choose "
            "another metric or other values. Nothing was stored."
        )
    best = min(scored, key=lambda c: (c["rank"], candidates.index(c)))
    warns = []
    failed = len(candidates) - len(scored)
    if failed:
        why = "; ".join(dict.fromkeys(failures(t) for t in texts if "fit" in t.lower()))
        warns.append(
            f"{failed} of {len(candidates)} candidates could not be fit or scored on every "
            f"fold (their mean_score is null)" + (f": {why}" if why else "") + "."
        )
    return {
        "search": "random" if n_iter else "grid",
        "metric": metric,
        "folds": folds,
        "best": {"params": best["params"], "score": best["mean_score"], "std": best["std_score"]},
        "candidates": candidates,
        "seconds": seconds,
        "warnings": warns,
    }


ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Warning)): (.+)$")


def failures(text: str) -> str:
    """What scikit-learn's "fits failed" message says went wrong, without its tracebacks
    (their lines name the server's files): the exceptions' own lines, else its first words."""
    lines = [m.group(0) for m in map(ERROR_LINE.match, text.splitlines()) if m]
    picked = list(dict.fromkeys(lines))[:3]
    return reason(Exception(" ".join(picked) if picked else text), limit=400)


def default_metric(kind: str | None) -> str:
    """What a candidate is scored with when no metric is given: the estimator's own score."""
    return "accuracy" if kind == "classifier" else "r2"


def fold_plan(
    X: Any, y: Any, kind: str | None, asked: int | None, options: Mapping[str, Any], ceilings: Any
) -> int:
    """The folds to search with: those asked (``cv``), else the model's ``cv_folds``, else
    the ceilings' (a search cross-validates even where ``cv_folds=0`` turned a retrain's off),
    planned as a retrain's (``crossval.plan``: no more folds than the smallest class has
    rows). A 400 when the data cannot be held out (too few rows) or is over ``cv_max_rows``."""
    from . import crossval

    folds = asked or options.get("cv_folds") or ceilings.cv_folds or FOLD_DEFAULT
    if y is None or kind not in ("classifier", "regressor"):
        raise BadRequest(
            "Expected a target column to score the candidates against; the training data "
            "gives none. Set target_col. Nothing was stored."
        )
    if len(X) > ceilings.cv_max_rows:
        raise BadRequest(
            f"Expected at most {ceilings.cv_max_rows:,} rows to cross-validate (cv_max_rows), "
            f"got {len(X):,}: a search fits every candidate on every fold. Search on a sample "
            "of the rows, or raise cv_max_rows. Nothing was stored."
        )
    planned, _ = crossval.plan(X, y, kind, 0.0, folds, ceilings)
    if planned is None:
        raise BadRequest(
            f"Expected enough rows for a {folds}-fold search (at least 2 per fold, and 2 of "
            f"every class), got {len(X):,} rows. Add rows, or give fewer folds (cv=2). "
            "Nothing was stored."
        )
    return planned
