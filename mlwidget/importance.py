"""Global importance (``MLModel.importance``): how much the model's score drops when one input
column's values are shuffled, for each column, on rows the model did not learn from.

The serving pipeline's unfitted copy (the same class, parameters and preprocessing) is fitted
on a split of the stored training data (``HELD_OUT`` of the rows held out, stratified for a
classifier, seeded) and scikit-learn's ``permutation_importance`` shuffles each original column
of the held-out rows ``repeats`` times (at most ``rows`` of them, a seeded sample) and scores
the copy by the model's metric (accuracy or r2, or the scorer asked for). A column's importance
is the mean drop of that score, with its std over the repeats: near 0 for a column the model
does not use, negative when shuffling it happened to help.

It runs as a job on the model's runner (stages ``load``, ``holdout``: the copy's fit,
``importance``: the shuffles, ``save``) and changes nothing stored. Everything a call can get
wrong (no training data, not trained, an unsupervised model, too few rows, a bad metric or
bound) is checked before a job exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from . import explaining, limits, tasks, training, versions
from . import jobs as jobs_
from .errors import BadRequest, Conflict, NotFound
from .options import parse_count
from .progress import fit_pipeline

HELD_OUT = 0.25  # the share of the stored rows held out from the copy's fit
ROWS = 2_000  # held-out rows shuffled, by default
MAX_ROWS = 20_000
REPEATS = 5  # shuffles of each column, by default
MAX_REPEATS = 20
LEAST_ROWS = 20  # stored rows the split needs at the least


def importance_job(
    model: Any,
    metric: str | None = None,
    repeats: Any = REPEATS,
    rows: Any = ROWS,
    inline: bool = False,
) -> jobs_.Job:
    """Check the request (see the module) and start the importance job on ``model``'s runner."""
    repeats = parse_count("repeats", repeats, least=1, most=MAX_REPEATS, meaning="shuffles")
    rows = parse_count("rows", rows, least=LEAST_ROWS, most=MAX_ROWS, meaning="held-out rows")
    snap = model.snapshot()
    fitted = snap.fitted or {}
    if not fitted or not snap.state.get("model"):
        raise Conflict(
            f"Model {model.name!r} is not trained yet: there is no model to measure. Train it "
            "first (retrain(); REST: POST ?_action=retrain)."
        )
    kind, target = fitted.get("kind"), fitted.get("target_col")
    if kind not in ("classifier", "regressor") or not target:
        raise BadRequest(
            f"Expected a classifier or a regressor with a target column, got a {kind} "
            f"({fitted.get('model')}): importance measures how much its score on held-out rows "
            "drops when a column is shuffled. Choose another class."
        )
    if snap.state.get("data_source"):
        raise BadRequest(
            f"Model {model.name!r} trains from a source whose rows only the workers read: "
            "importance needs stored training rows. Retrain it on a table first."
        )
    if not snap.state.get("data"):
        raise NotFound(
            f"Model {model.name!r} has no training data to hold rows out of. Retrain it with "
            "data (REST: POST a CSV/JSON body with ?_action=retrain) or append rows first."
        )
    if metric:
        training.check_metric(metric, kind, True)
    scorer = metric or fitted.get("metric") or ("accuracy" if kind == "classifier" else "r2")
    ceilings = limits.current()

    def prepare() -> dict[str, Any]:
        from sklearn.base import clone

        from .predicting import require_pipeline

        def take(s: Any) -> dict[str, Any]:
            return {
                "version": versions.serving(s.state),
                "schema": s.schema,
                "pipeline": clone(require_pipeline(s, model.name)),  # unfitted: small
                "table": s.data(),
            }

        read = dict(model.repo.read(take))
        if read["table"] is None:
            raise NotFound(f"Model {model.name!r} lost its training data meanwhile.")
        return {
            **read,
            "kind": kind,
            "target": target,
            "metric": scorer,
            "repeats": repeats,
            "rows": rows,
            "limits": ceilings,
        }

    def keep(answer: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        return answer  # nothing is stored

    job = jobs_.Job("importance", model.name, model.job_key, writer=False)
    return model.runner.start(job, prepare, work, keep, inline=inline)


def work(payload: dict[str, Any], report: Callable[..., None]) -> dict[str, Any]:
    """The job's work (see the module), where the job runs: ``{"importance": [{"column",
    "mean", "std"}, ...] (largest first), "metric", "baseline", "rows", "train_rows",
    "repeats", "version", "seconds"}``."""
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import get_scorer

    started = time.perf_counter()
    with limits.using(payload.get("limits")):
        X_train, X_test, y_train, y_test = split(payload)
        estimator = payload["pipeline"]

        def fitting(_stage: str, fraction: float | None) -> None:
            report("holdout", fraction)

        fit_pipeline(estimator, X_train, y_train, fitting)
        names = list(X_test.columns)
        calls = 1 + len(names) * payload["repeats"]  # the baseline, then each shuffle
        done = [0]
        base_scorer = get_scorer(payload["metric"])

        def scorer(fitted: Any, X: Any, y: Any) -> float:
            score = base_scorer(fitted, X, y)
            done[0] += 1
            report("importance", min(1.0, done[0] / calls))
            return score

        report("importance", 0.0)
        found = permutation_importance(
            estimator, X_test, y_test, scoring=scorer, n_repeats=payload["repeats"],
            random_state=0,
        )  # fmt: skip
    columns: list[dict[str, Any]] = [
        {"column": name, "mean": round(float(mean), 6), "std": round(float(std), 6)}
        for name, mean, std in zip(
            names, found.importances_mean, found.importances_std, strict=True
        )
    ]
    columns.sort(key=lambda c: c["mean"], reverse=True)
    return {
        "importance": columns,
        "metric": payload["metric"],
        "baseline": float(base_scorer(estimator, X_test, y_test)),
        "rows": len(X_test),
        "train_rows": len(X_train),
        "repeats": payload["repeats"],
        "on": f"held-out rows ({len(X_test):,} of the {len(X_train) + len(X_test):,} stored)",
        "version": payload.get("version"),
        "seconds": round(time.perf_counter() - started, 3),
    }


def split(payload: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """The stored rows with a target, typed as the model reads them, split into the copy's
    training rows and at most ``payload["rows"]`` held-out rows (stratified for a classifier
    whose every class has two rows or more)."""
    from sklearn.model_selection import train_test_split

    from .schema import cast

    table, target, kind = payload["table"], payload["target"], payload["kind"]
    if target not in table.columns:
        raise BadRequest(f"Expected the target column {target!r} in the stored data; it is gone.")
    table = table[table[target].notna()].reset_index(drop=True)
    names = [f["name"] for f in payload["schema"]]
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise BadRequest(
            f"The stored data lacks the column(s) {', '.join(map(repr, missing))} the model was "
            "trained on. Retrain it, then measure its importance."
        )
    if len(table) < LEAST_ROWS:
        raise BadRequest(
            f"Expected at least {LEAST_ROWS} stored rows with a target to hold some out, got "
            f"{len(table)}. Append rows first."
        )
    X, y = cast(table[names], payload["schema"]), table[target]
    stratify = None
    if kind == "classifier" and int(y.value_counts().min()) >= 2:
        stratify = y
    held = min(payload["rows"], max(1, int(round(len(table) * HELD_OUT))))
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=held, random_state=0, stratify=stratify
    )
    return X_train, X_test.reset_index(drop=True), y_train, y_test.reset_index(drop=True)


class ExplainMixin(explaining.ExplainMixin):
    """``MLModel``'s explanations: of each prediction (``explain``, explaining.py) and of the
    whole model (``importance``), a mixin so that the class stays one concept a module."""

    def importance(
        self,
        metric: str | None = None,
        repeats: int = REPEATS,
        rows: int = ROWS,
        wait: bool = True,
    ) -> Any:
        """How much the model's score drops when each input column is shuffled, on stored rows
        held out from a copy of it fitted on the rest (permutation importance; see
        docs/widgets.md, "Summary"): ``{"importance": [{"column", "mean", "std"}, ...]
        (largest first), "metric", "baseline", "rows", "on", ...}``. ``metric``: a scikit-learn
        scorer name (default: the model's); ``repeats`` shuffles of each column (1 to 20) on at
        most ``rows`` held-out rows. A job that changes nothing stored; ``wait=False`` returns
        it (:class:`~mlwidget.jobs.Job`)."""
        job = importance_job(self, metric, repeats, rows, inline=wait)
        return tasks.wait(job) if wait else job
