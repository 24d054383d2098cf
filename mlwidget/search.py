"""Hyper-parameter search as a job: a grid of the estimator's parameters (every combination,
or ``n_iter`` of them drawn at random) is cross-validated on the stored data, every candidate's
score is recorded, and the best one is refit on all the rows and committed as a new version,
with its parameters in the model's options and its cross-validated score as the version's
``cv_score``.

Everything a request can get wrong (the parameters' names and values, an empty or too large
grid, the budget, the folds, the metric, a model without data or class) is checked here, before
a job exists, exactly as ``configure`` checks the estimator's parameters: a 400 and no job. The
work runs on the model's runner (search_work.py); the commit is a retrain's (tasks.store_fit in
one transaction that expects the data and options the search started from).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from . import estimators as est
from . import jobs as jobs_
from . import limits, search_work, tasks, training
from . import state as state_
from .errors import BadRequest, MLWidgetError, NotFound
from .options import parse_count
from .param_types import INNER_ESTIMATOR, INNER_ESTIMATORS
from .repo import basis
from .snapshot import Snapshot

MAX_CANDIDATES = 200  # candidates (parameter combinations) one search tries at most
MAX_VALUES = 1_000  # values of one parameter in a grid
MAX_COMBINATIONS = 1_000_000  # combinations a grid may have when n_iter samples from it
MAX_FOLDS = 20  # folds a search may ask for (cv=...)
EXAMPLE = '{"grid": {"C": [0.1, 1, 10]}}'
NOTHING = "Nothing was searched or stored."


class SearchRequest(NamedTuple):
    """A search, checked: the grid's values typed (what the estimator gets) by parameter,
    the budget (None: every combination), the folds asked (None: the retrain's plan) and the
    metric (None: the kind's default, accuracy or r2)."""

    grid: dict[str, list[Any]]
    n_iter: int | None
    cv: int | None
    metric: str | None
    combinations: int


def parse_grid(
    cls: type, grid: Any, base: Mapping[str, Any], allowed: tuple[str, ...] = ()
) -> dict[str, list[Any]]:
    """``grid`` (parameter name -> list of values; text is typed as a URL's would be) checked
    against ``cls``: known parameters, lists of at most ``MAX_VALUES`` values, each value valid
    for the estimator beside the model's other parameters ``base`` (the check ``configure``
    makes). Returns the typed values, duplicates dropped."""
    if grid is None or (isinstance(grid, Mapping) and not grid):
        raise BadRequest(
            f"Expected a grid of {cls.__name__}'s parameters to search, each with a list of "
            f"values, such as {EXAMPLE}; got none. REST: send it as the JSON body, or as "
            f"query keys grid.C=0.1,1,10. {NOTHING}"
        )
    if not isinstance(grid, Mapping):
        raise BadRequest(
            f"Expected the grid to be an object of parameter names and lists of values, such "
            f"as {EXAMPLE}; got {type(grid).__name__}. {NOTHING}"
        )
    valid = est.valid_param_names(cls)
    unknown = [str(key) for key in grid if key not in valid]
    if unknown:
        raise BadRequest(
            f"{cls.__name__} has no parameter {', '.join(map(repr, unknown))} to search. "
            f"Valid parameters: {', '.join(valid)}. {NOTHING}"
        )
    for key in grid:
        if key in (INNER_ESTIMATOR, INNER_ESTIMATORS) or str(key).endswith("n_jobs"):
            raise BadRequest(
                f"Expected parameters that change the model in the grid, got {key!r}: it is "
                "not searched (set it with configure, or PUT ?_model). " + NOTHING
            )
    return {str(key): _values(cls, str(key), values, base, allowed) for key, values in grid.items()}


def _values(
    cls: type, key: str, values: Any, base: Mapping[str, Any], allowed: tuple[str, ...]
) -> list[Any]:
    if isinstance(values, range) or type(values).__name__ == "ndarray":
        values = list(values)
    if not isinstance(values, list | tuple):
        raise BadRequest(
            f"Expected a list of values for {key!r} in the grid (e.g. [0.1, 1, 10]), got "
            f"{_short(values)}. A single value is a list of one: [{_short(values)}]. {NOTHING}"
        )
    if not values:
        raise BadRequest(
            f"Expected at least one value for {key!r} in the grid, got an empty list. Give "
            f"the values to try, or leave {key!r} out. {NOTHING}"
        )
    if len(values) > MAX_VALUES:
        raise BadRequest(
            f"Expected at most {MAX_VALUES:,} values for {key!r} in the grid, got "
            f"{len(values):,}. Give fewer (n_iter samples a large grid). {NOTHING}"
        )
    typed: list[Any] = []
    seen: set[str] = set()
    for value in values:
        try:
            one = est.parse_params(cls, {key: value}, allowed)[key]
            # the estimator's own checks, beside the model's other parameters (as configure)
            state_.jsonable_params(cls, {**base, key: one}, allowed)
        except MLWidgetError as exc:
            raise BadRequest(
                f"The grid's value {_short(value)} for {key!r} is refused: {exc} {NOTHING}"
            ) from None
        text = json.dumps(est.to_jsonable(one), sort_keys=True, default=str)
        if text not in seen:
            seen.add(text)
            typed.append(one)
    return typed


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def parse_request(
    cls: type,
    kind: str | None,
    grid: Any,
    n_iter: Any,
    cv: Any,
    metric: Any,
    base: Mapping[str, Any],
    allowed: tuple[str, ...] = (),
) -> SearchRequest:
    """The whole search request checked (see ``SearchRequest``); a BadRequest saying what was
    expected, what arrived and what to do at the first problem."""
    typed = parse_grid(cls, grid, base, allowed)
    sizes = [len(values) for values in typed.values()]
    combinations = math.prod(sizes)
    shape = " x ".join(str(n) for n in sizes)
    budget = None
    if n_iter is not None and n_iter != "":
        budget = nothing_done(
            parse_count, "n_iter", n_iter, least=1, most=MAX_CANDIDATES, meaning="candidates"
        )
        if budget > combinations:
            raise BadRequest(
                f"Expected n_iter to be at most the grid's {combinations} combinations "
                f"({shape}), got {budget}. Give n_iter={combinations} or less, or leave it "
                f"out to try every combination. {NOTHING}"
            )
        if combinations > MAX_COMBINATIONS:
            raise BadRequest(
                f"Expected a grid of at most {MAX_COMBINATIONS:,} combinations to sample from, "
                f"got {combinations:,} ({shape}). Give fewer values. {NOTHING}"
            )
    elif combinations > MAX_CANDIDATES:
        raise BadRequest(
            f"Expected a grid of at most {MAX_CANDIDATES} combinations, got {combinations:,} "
            f"({shape}). Give fewer values, or n_iter=N (at most {MAX_CANDIDATES}) to try N "
            f"of them drawn at random. {NOTHING}"
        )
    folds = None
    if cv is not None and cv != "":
        folds = nothing_done(parse_count, "cv", cv, least=2, most=MAX_FOLDS, meaning="folds")
    if metric is not None and metric != "":
        if not isinstance(metric, str):
            raise BadRequest(
                f"Expected metric to be a scikit-learn scorer name such as accuracy or r2, "
                f"got {_short(metric)}. {NOTHING}"
            )
        nothing_done(training.check_metric, metric, kind, True)
    return SearchRequest(typed, budget, folds, metric or None, combinations)


def nothing_done(check: Any, *args: Any, **kwargs: Any) -> Any:
    """``check(*args, **kwargs)``; its BadRequest says that nothing was searched or stored."""
    try:
        return check(*args, **kwargs)
    except BadRequest as exc:
        text = str(exc).replace("Nothing was trained or stored.", "").strip()
        raise BadRequest(f"{text} {NOTHING}") from None


def searchable(model: Any) -> tuple[Snapshot, dict[str, Any], list[str] | None]:
    """The model's snapshot, the options to search with (a class chosen for a target, as a
    retrain chooses one) and the notes on that choice; the retrain's errors for a model
    without data or class, and a 400 for one without a target."""
    snap = model.snapshot()
    options = dict(snap.options)
    if snap.state.get("data_source") and not snap.state.get("data"):
        name = (snap.state["data_source"] or {}).get("source") or "a source"
        raise BadRequest(
            f"Model {model.name!r} trains from {name!r}, whose rows only the workers read; a "
            "search runs on a model's stored training data. Retrain it with data (or append "
            "rows) to search it."
        )
    if not snap.state.get("data"):
        raise NotFound(
            f"Model {model.name!r} has no training data. Retrain with data "
            "(REST: POST a CSV/JSON body with ?_action=retrain) or append rows first."
        )
    notes: list[str] | None = None
    if not options.get("class") and options.get("target_col"):  # the default for the kind
        notes = state_.default_class(options, model.repo.read(Snapshot.data))
    if not options.get("class"):
        raise BadRequest(
            f"Model {model.name!r} has no model class. Set one first: "
            "configure(class_='LogisticRegression') (REST: PUT ?_model&class=...), or give "
            "target_col and a class suited to it is chosen."
        )
    if not options.get("target_col"):
        raise BadRequest(
            f"Expected model {model.name!r} to have a target column: a search scores each "
            "candidate's predictions of it on held-out rows. Set one first: "
            "configure(target_col='...') (REST: PUT ?_model&target_col=...)."
        )
    return snap, options, notes


def search_job(
    model: Any,
    grid: Any = None,
    n_iter: Any = None,
    metric: Any = None,
    cv: Any = None,
    inline: bool = False,
) -> jobs_.Job:
    """Check the search (see module) and start it as a writer job on the model's runner."""
    snap, options, notes = searchable(model)
    allowed = tuple(model.allowed_classes)
    cls = est.resolve_class(options["class"], allowed)
    kind = est.estimator_kind(cls)
    if kind not in ("classifier", "regressor"):
        raise BadRequest(
            f"Expected a classifier or a regressor to search, got {cls.__name__} (a {kind}): "
            "a search compares scores of predictions on held-out rows. Choose another class."
        )
    base = dict(options.get("params") or {})
    asked = parse_request(cls, kind, grid, n_iter, cv, metric, base, allowed)
    before = basis(snap.state)
    ceilings = limits.current()  # the job's work runs under the ceilings in force here

    def prepare() -> dict[str, Any]:
        frame, known = model.repo.read(lambda s: (s.data(), s.state.get("data_hash")))
        if frame is None:
            raise NotFound(f"Model {model.name!r} lost its training data meanwhile.")
        return {
            "options": options,
            "table": frame,
            "data_hash": known,
            **tasks.staging(model),
            "allowed_classes": allowed,
            "metric": None,  # the refit's: its score is on the training rows, as a retrain's
            "limits": ceilings,
            "grid": asked.grid,
            "n_iter": asked.n_iter,
            "cv": asked.cv,
            "search_metric": asked.metric,
        }

    def commit(result: search_work.Searched, payload: dict[str, Any]) -> dict[str, Any]:
        summary = result.summary
        searched = search_work.best_options(options, summary["best"]["params"])
        wait = max(model.lock_timeout, tasks.COMMIT_WAIT)
        with model.repo.transaction(wait, expect=before) as tx:
            tx.state["options"] = searched
            if notes is not None:
                tx.state["notes"] = notes
            stored = tasks.store_fit(tx, payload["table"], result.fitted, False, None)
        return answer(summary, stored, tx.state.get("notes") or [])

    job = jobs_.Job("search", model.name, model.job_key, writer=True)
    return model.runner.start(job, prepare, search_work.work, commit, inline=inline)


def answer(summary: Mapping[str, Any], stored: Mapping[str, Any], notes: list[str]) -> dict:
    """The search job's answer: the search (best, every candidate, metric, folds) and the
    version it committed (its cv_score is the best candidate's score)."""
    return {
        **summary,
        "version": stored["version"],
        "model": stored["model"],
        "rows": stored["rows"],
        "target_col": stored["target_col"],
        "cv_score": stored["cv_score"],
        "training_score": {
            "score": stored["score"],
            "metric": stored["metric"],
            "on": stored["on"],
        },
        "warnings": list(dict.fromkeys([*stored["warnings"], *summary.get("warnings", [])])),
        "notes": notes,
    }
