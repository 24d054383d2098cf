"""Versions: every successful fit is kept, numbered 1, 2, 3, ... in the model's state.

``state["versions"]`` lists them oldest first, each ``{"version", "model" (its file), "options"
(the configuration it was fit with), "fitted" (class, params, scores, rows, data hash, timings,
libraries), "schema"}``; ``state["serving"]`` is the number of the one that serves. A rollback
makes an older one serve again by rewriting ``state.json`` once (the store's atomic commit), so a
crash leaves one of the two serving, never neither. ``keep_versions`` (an option, default 10)
bounds how many are kept; the serving one is never dropped. Pure functions over a state dict: no
store access here.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Mapping
from typing import Any

from . import access
from .errors import BadRequest, NotFound

KEEP = 10  # versions kept when the model's keep_versions option is not set
LIBRARIES = ("python", "scikit-learn", "numpy", "pandas", "mlwidget")


def libraries() -> dict[str, str]:
    """The versions of what a pickled pipeline depends on, in this process."""
    return dict(_libraries())


@functools.cache
def _libraries() -> dict[str, str]:  # imported modules' versions do not change in a process
    from importlib.metadata import PackageNotFoundError, version

    import numpy
    import pandas
    import sklearn

    try:
        mine = version("mlwidget")
    except PackageNotFoundError:  # run from a checkout without installing
        mine = "unknown"

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "mlwidget": mine,
    }


def library_warnings(fitted: Mapping[str, Any] | None) -> list[str]:
    """A warning if ``fitted`` was fit under other versions of the libraries than these."""
    recorded = (fitted or {}).get("libraries")
    if not recorded:
        return []
    here = libraries()
    differ = [
        f"{name} {recorded[name]} (here {here[name]})"
        for name in LIBRARIES
        if recorded.get(name) and recorded[name] != here[name]
    ]
    if not differ:
        return []
    return [
        "This model was fit with "
        + ", ".join(differ)
        + ": pickled scikit-learn models are not portable across releases, so its answers may "
        "differ or fail. Retrain it here to be sure."
    ]


def entries(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The versions of ``state``, oldest first. A model fitted before versions existed (or
    imported) has its serving fit as version 1."""
    if state.get("versions") is not None:
        return list(state["versions"])
    if state.get("model") and state.get("fitted"):
        return [_entry(1, state)]
    return []


def _entry(number: int, state: Mapping[str, Any]) -> dict[str, Any]:
    from .options import CONFIG_KEYS

    options = state.get("options") or {}
    return {
        "version": number,
        "model": state.get("model"),
        "options": {key: options.get(key) for key in CONFIG_KEYS},
        "fitted": dict(state.get("fitted") or {}),
        "schema": list(state.get("schema") or []),
    }


def materialize(state: dict[str, Any]) -> None:
    """Before a fit replaces the model: a state from before versions existed keeps its fit as
    version 1 (so it can be rolled back to)."""
    if state.get("versions") is None:
        state["versions"] = entries(state)


def add(state: dict[str, Any]) -> int:
    """Record the fit ``state`` now names (its model, fitted and schema) as a new version that
    serves; drop the oldest beyond ``keep_versions`` (never the new one). Returns its number.
    Call ``materialize`` before the state's model is replaced."""
    kept = list(state.get("versions") or [])
    number = max([e["version"] for e in kept], default=0) + 1
    # who made it (the audit): a key's label, a JupyterHub user, or the owner
    state["fitted"] = {**state["fitted"], "version": number, "trained_by": access.acting()}
    kept.append(_entry(number, state))
    keep = keep_count(state.get("options") or {})
    while len(kept) > keep:
        kept.remove(next(e for e in kept if e["version"] != number))
    state["versions"] = kept
    state["serving"] = number
    return number


def update(state: dict[str, Any], number: int, **fitted: Any) -> bool:
    """Set ``fitted`` fields of version ``number``'s record in ``state`` (its cross-validated
    score, filled after the fit was committed); False if that version is no longer kept."""
    kept = list(state.get("versions") or [])
    for i, entry in enumerate(kept):
        if entry.get("version") == number:
            kept[i] = {**entry, "fitted": {**(entry.get("fitted") or {}), **fitted}}
            state["versions"] = kept
            return True
    return False


def keep_count(options: Mapping[str, Any]) -> int:
    value = options.get("keep_versions")
    return KEEP if value is None else int(value)


def find(state: Mapping[str, Any], version: Any, name: str) -> dict[str, Any]:
    """The entry of ``version`` (a number, or its text); 400 if not a number, 404 if not kept."""
    try:
        number = int(str(version).strip())
    except (TypeError, ValueError):
        raise BadRequest(
            f"Expected version to be a version number such as 1 or 2, got {version!r}. "
            "GET ?_versions lists them."
        ) from None
    kept = entries(state)
    for entry in kept:
        if entry["version"] == number:
            return entry
    numbers = ", ".join(str(e["version"]) for e in kept) or "none yet"
    raise NotFound(
        f"Model {name!r} has no version {number}; it keeps {numbers} "
        "(older ones were dropped by keep_versions). GET ?_versions lists them."
    )


def serving(state: Mapping[str, Any]) -> int | None:
    if not state.get("model"):
        return None
    if state.get("serving") is not None:
        return int(state["serving"])
    return 1 if entries(state) else None


def rollback(state: dict[str, Any], entry: Mapping[str, Any]) -> None:
    """Make ``entry`` serve again: its model, fit record, schema and configuration."""
    state["model"] = entry["model"]
    state["fitted"] = dict(entry["fitted"])
    state["schema"] = list(entry["schema"])
    state["options"] = {**state["options"], **entry["options"]}
    state["serving"] = entry["version"]
    if state.get("versions") is None:
        state["versions"] = entries(state)


def files(state: Mapping[str, Any]) -> set[str]:
    """The model files the versions name (the store keeps them)."""
    return {e["model"] for e in state.get("versions") or () if e.get("model")}


def score_on(fitted: Mapping[str, Any]) -> str:
    """What the training score was computed on: the training rows, or a sample of them."""
    scored, rows = fitted.get("score_rows"), fitted.get("rows")
    if scored and rows and scored < rows:
        return f"training (a random sample of {scored:,} of {rows:,} rows)"
    return "training"


def public(entry: Mapping[str, Any], serving_version: int | None) -> dict[str, Any]:
    """A version as ``?_versions`` shows it."""
    fitted = entry.get("fitted") or {}
    score = None
    if fitted.get("score") is not None:
        score = {"value": fitted["score"], "metric": fitted.get("metric"), "on": score_on(fitted)}
    return {
        "version": entry["version"],
        "class": fitted.get("model"),
        "params": fitted.get("params"),
        "options": entry.get("options"),
        "trained_at": fitted.get("trained_at"),
        "trained_by": fitted.get("trained_by"),
        "rows": fitted.get("rows"),
        "data_rows": fitted.get("data_rows"),
        "data_hash": fitted.get("data_hash"),
        "score": score,
        "cv_score": fitted.get("cv_score"),
        "timings": fitted.get("timings"),
        "libraries": fitted.get("libraries"),
        "serving": entry["version"] == serving_version,
    }


def listing(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``?_versions``: newest first."""
    now = serving(state)
    return [public(e, now) for e in reversed(entries(state))]
