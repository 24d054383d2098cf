"""A model's changes that are not fits, each made inside one repository transaction
(repo.py): a new model's first state, configure, append, and deleting its data or its fit.

Each function edits ``tx.state`` (and writes files through ``tx``) and returns the answer the
faces give; ``MLModel`` opens the transaction, so a failure anywhere commits nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import pandas as pd

from . import options as opt
from . import schema, versions
from . import state as state_
from .errors import BadRequest, Conflict
from .repo import Transaction
from .sources import source_warnings
from .tables import read_table


def first_state(tx: Transaction, initial: state_.Initial) -> None:
    """A new model's state from ``state.initial``: options, data, a model brought in; no fit
    (a model that can be trained then trains as a job, as a retrain does). Replacing a model
    (``overwrite=True``) keeps its version counter."""
    merged, table, imported, warns, notes = initial
    previous = tx.state.get("version", 0)
    tx.state = {"version": previous, "created_at": state_.now()}
    tx.state.update(options=merged, data=None, model=None, fitted=None, schema=None)
    tx.state["warnings"] = warns
    tx.state["created_warnings"], tx.state["notes"] = warns, notes
    if table is not None:
        tx.put_data(table)
    if imported is not None:
        tx.state["model"] = tx.put_model(imported)
        tx.state["fitted"] = state_.imported_meta(imported, merged)
        tx.state["schema"] = schema.schema_from_estimator(imported)


class Configuration(NamedTuple):
    """A configure request, parsed and read before the model's lock is taken."""

    options: dict[str, Any]
    params: dict[str, Any]
    source: Any  # the data source given (a file, a table, a database query), or None
    table: pd.DataFrame | None
    warnings: list[str]


def parse_configuration(changes: Mapping[str, Any]) -> Configuration:
    """Options, estimator parameters and a new data source from a configure call's keys."""
    options, params, warns = opt.split(dict(changes))
    source = options.pop("data", None)
    table = read_table(source) if source is not None else None
    warns += source_warnings(source)
    return Configuration(opt.clean(options), params, source, table, warns)


def configure(tx: Transaction, asked: Configuration, allowed_classes: tuple[str, ...]) -> None:
    """Stage ``asked`` in the model's options (nothing is refit); new data replaces the
    stored data."""
    state = tx.state
    current = state_.staged_options(state["options"], asked.options, asked.params, allowed_classes)
    if asked.source is not None:
        current["data"] = state_.describe_source(asked.source)
    if asked.options.get("shadow") is not None or asked.options.get("log_predictions") is False:
        check_shadow(state, current, tx.repo.name)
    state["options"] = current
    if asked.table is not None:
        tx.put_data(asked.table)
    state["warnings"] = list(state.get("created_warnings") or []) + asked.warnings
    state["warnings"] += schema.column_warnings(current, state.get("data_columns"))


def check_shadow(state: Mapping[str, Any], options: Mapping[str, Any], name: str) -> None:
    """A ``shadow`` version is a kept one, and its answers need the prediction log."""
    shadow = options.get("shadow")
    if shadow is None:
        return
    versions.find(state, shadow, name)  # 404 naming the kept versions
    if not options.get("log_predictions"):
        raise BadRequest(
            f"Expected log_predictions=true with shadow={shadow}: the shadow version's answers "
            "are logged beside the served ones, and only there. Set both (PUT "
            f"?_model&log_predictions=true&shadow={shadow}), or shadow=none to stop shadowing."
        )


def append(tx: Transaction, stored: pd.DataFrame | None, rows: pd.DataFrame) -> dict[str, Any]:
    """Add ``rows`` to the ``stored`` training data (the same columns)."""
    source = (tx.state.get("data_source") or {}).get("source")
    if source:
        raise Conflict(
            f"Model {tx.repo.name!r} trains from source {source!r}: its rows are the source's, "
            "so append them to the source's files (and retrain), or retrain with rows to make "
            "them the model's own data."
        )
    combined = state_.appended(stored, rows)
    tx.put_data(combined)
    return {"rows": len(combined), "appended": len(rows)}


def delete_model(tx: Transaction, name: str) -> dict[str, Any]:
    """Drop the fit and its versions; options and data stay. Gramex's idempotent answer."""
    if not tx.state.get("model"):
        tx.unchanged()
        return state_.delete_answer(name, "model", done=False)
    tx.state["model"], tx.state["fitted"] = None, None
    tx.state["versions"], tx.state["serving"] = [], None  # the history goes with it
    return state_.delete_answer(name, "model", done=True)


def delete_data(tx: Transaction, name: str, stored: pd.DataFrame | None) -> dict[str, Any]:
    """Drop the training data, remembering its columns and dtypes (what ``data()`` shows
    from now on: the columns, no rows). Gramex's idempotent answer, as ``"cache"``."""
    state = tx.state
    if state.get("data_source"):  # no rows of its own: it forgets the source it trains from
        state["data_source"], state["data_rows"] = None, 0
        return state_.delete_answer(name, "cache", done=True)
    if not state.get("data"):
        tx.unchanged()
        return state_.delete_answer(name, "cache", done=False)
    if stored is not None:
        state["data_columns"] = [str(c) for c in stored.columns]
        state["data_dtypes"] = {str(c): str(t) for c, t in stored.dtypes.items()}
    state["data"], state["data_rows"] = None, 0
    return state_.delete_answer(name, "cache", done=True)
