"""What the faces show of a model: the ``?_model`` info and Gramex's ``?_params`` shape,
built from one committed state (no store access, no loading, no compiling)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from . import estimators as est
from . import options as opt
from . import versions
from .errors import MLWidgetError
from .snapshot import NOT_LOADED


def info(
    name: str,
    state: Mapping[str, Any],
    allowed_classes: Iterable[str] = (),
    predict_path: str | None = NOT_LOADED,
    predict_path_reason: str | None = None,
    loaded: bool = False,
) -> dict[str, Any]:
    """The ``?_model`` answer: configured estimator, fitted one, stale flag, warnings.
    ``loaded``, ``predict_path`` and its reason are what the caller's process holds in memory
    (the defaults: nothing loaded); a state without a fitted model has no predict path."""
    if not state.get("model"):
        predict_path = predict_path_reason = None
    options = state["options"]
    configured = options.get("class")
    params: dict[str, Any] = {}
    kind = None
    if configured:
        try:
            cls = est.resolve_class(configured, allowed_classes)
            inst = est.make_estimator(cls, options.get("params") or {}, allowed_classes)
            params = est.to_jsonable(inst.get_params(deep=False))
            kind = est.estimator_kind(cls)
        except MLWidgetError:
            params = dict(options.get("params") or {})
    fitted = state.get("fitted")
    features = state.get("schema") or []
    stale_reasons = _stale_reasons(state)
    path = options.get("path")
    has_data = bool(state.get("data") or state.get("data_source"))
    return {
        "name": name,
        "model": configured,
        "params": params,
        "kind": kind or (fitted or {}).get("kind"),
        "target_col": options.get("target_col"),
        "features": [f["name"] for f in features],
        "schema": features,
        "dates": [f["name"] for f in features if f.get("kind") == "date"],  # read as numbers
        "options": {k: v for k, v in _public_options(options).items()},
        "rows": int(state.get("data_rows") or 0) if has_data else 0,
        # the configured source the workers read its training data from (its name only)
        "source": (state.get("data_source") or {}).get("source"),
        "rows_explained": _rows_explained(state),
        "fitted": fitted,
        "stale": bool(stale_reasons),
        "stale_reasons": stale_reasons,
        "warnings": list(state.get("warnings") or []) + versions.library_warnings(fitted),
        # what was decided for the user (a class chosen for the target), as sentences
        "notes": list(state.get("notes") or []),
        "path": os.path.basename(path) if path else "store",
        # the serving version (see versions.py), and how many commits the state has seen
        "version": versions.serving(state),
        "changed_by": state.get("changed_by"),  # who made the last change (the audit)
        "commit": state.get("version"),
        # whether this process has the fitted pipeline in memory; what answers few-row
        # predictions ("fast (...)", "pipeline"; "not loaded" until the first prediction)
        "loaded": bool(loaded),
        "predict_path": predict_path,
        "predict_path_reason": predict_path_reason,
    }


def params_info(info: Mapping[str, Any], estimator: Any) -> dict[str, Any]:
    """The ``?_params`` answer, as Gramex gives it: options, class + params, fitted attrs."""
    attrs: dict[str, Any] = {}
    if estimator is not None:
        for key, value in vars(estimator).items():
            if key.endswith("_") and not key.startswith("_"):
                if isinstance(value, np.ndarray) and value.size > 10_000:
                    continue
                attrs[key] = est.to_jsonable(value)
    options = info["options"]
    # Gramex 1.94.5's opts are its ml_api.TRANSFORMS keys: mlwidget's values under them
    # (mlwidget always builds a preprocessing pipeline and has no index column), then
    # mlwidget's own options beside them.
    opts = {
        "include": options.get("include") or [],
        "exclude": options.get("exclude") or [],
        "dropna": options.get("dropna", True),
        "drop_duplicates": options.get("deduplicate", True),
        "pipeline": True,
        "nums": options.get("nums") or [],
        "cats": options.get("cats") or [],
        "target_col": options.get("target_col"),
        "index_col": None,
    }
    opts.update({k: v for k, v in options.items() if k not in opts})
    return {
        "opts": opts,
        "params": {"class": info["model"], "params": info["params"]},
        "attrs": attrs,
    }


def _public_options(options: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(options)
    for key in ("path", "template"):
        if out.get(key):
            out[key] = os.path.basename(str(out[key]))
    return out


def _stale_reasons(state: Mapping[str, Any]) -> list[str]:
    fitted = state.get("fitted")
    if not fitted:
        return []
    reasons = []
    config = fitted.get("config")
    if config is not None:
        options = state["options"]
        changed = [k for k in opt.CONFIG_KEYS if config.get(k) != options.get(k)]
        if changed:
            reasons.append(f"changed since training: {', '.join(changed)}")
    same_values = fitted.get("data_hash") and fitted.get("data_hash") == state.get("data_hash")
    if fitted.get("data") and state.get("data") != fitted.get("data") and not same_values:
        reasons.append("the training data changed since training")
    return reasons


def _rows_explained(state: Mapping[str, Any]) -> str | None:
    """Why the rows a model was fit on differ from the rows stored (dropna, deduplicate)."""
    fitted = state.get("fitted") or {}
    used, stored = fitted.get("rows"), fitted.get("data_rows")
    if used is None or stored is None:
        return None
    if used == stored:
        return f"Fit on all {stored:,} stored rows."
    options = fitted.get("config") or {}
    how = [
        name
        for name, on in (("dropna", options.get("dropna", True)),
                         ("deduplicate", options.get("deduplicate", True)))
        if on
    ]  # fmt: skip
    why = " and ".join(how) or "the column options"
    return (
        f"Fit on {used:,} of {stored:,} stored rows: {stored - used:,} were left out by {why} "
        "(rows with a missing value, repeated rows). Set dropna=false or deduplicate=false to "
        "keep them."
    )
