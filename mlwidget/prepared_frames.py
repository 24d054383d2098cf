"""The training frames this process prepared lately, found again by their data's fingerprint.

Preparing a training frame (``schema.training_frame``: the used columns, the rows left after
missing values and duplicates, each feature's kind, categories and default, the columns cast
as a prediction's input will be) is the same work for every fit of the same rows under the
same column options. For the guide's Titanic model it took 3 to 5 ms, a third to a half of the
LogisticRegression's own fit. So a process (a kernel, a server's job thread, a worker process,
a Dask worker) keeps the last few small frames it prepared and hands a copy to the next fit of
the same: a retrain after a change of class or parameters, the cross-validation that follows
a retrain, a search's candidates.

The key is the table's fingerprint (``training.data_hash``, of its columns and values, which
the store keeps beside the data), its rows and dtypes, the kind of values each column of
Python objects holds, the estimator's kind and every option but the estimator's own. A table
that changed (an append, a new upload) has another fingerprint and is prepared again; a fit
without a fingerprint is never looked up.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import pandas as pd

from . import schema

KEPT = 4  # frames a process keeps, the least recently used going first
MAX_CELLS = 250_000  # a larger prepared frame is not kept (its fit dwarfs its preparation)
# options that choose or tune the estimator, not the frame it fits on (any other option is
# part of the key, so an option added later can only make a lookup miss, never hit wrongly)
ESTIMATOR_OPTIONS = ("class", "params", "cv_folds", "keep_versions")

Frame = tuple[pd.DataFrame, pd.Series | None, list[dict[str, Any]], list[str]]

_kept: OrderedDict[tuple[Any, ...], Frame] = OrderedDict()
_lock = threading.Lock()
_counts = {"hits": 0, "misses": 0}


def training_frame(
    table: pd.DataFrame,
    options: Mapping[str, Any],
    kind: str | None,
    fingerprint: str | None = None,
) -> Frame:
    """``schema.training_frame(table, options, kind)``: a copy of the frame kept for the same
    ``fingerprint`` (``table``'s ``data_hash``), rows, dtypes and options, else prepared (and
    kept if small)."""
    if not fingerprint:
        return schema.training_frame(table, options, kind)
    key = _key(table, options, kind, fingerprint)
    with _lock:
        found = _kept.get(key)
        if found is not None:
            _kept.move_to_end(key)
        _counts["hits" if found is not None else "misses"] += 1
    if found is None:
        found = schema.training_frame(table, options, kind)
        X, y = found[0], found[1]
        if X.size + (0 if y is None else len(y)) <= MAX_CELLS:
            with _lock:
                _kept[key] = found
                while len(_kept) > KEPT:
                    _kept.popitem(last=False)
    return _copy(found)


def counts() -> dict[str, int]:
    """How many lookups found a kept frame (``hits``) and how many prepared one (``misses``),
    and how many frames are kept (``kept``), in this process."""
    with _lock:
        return {**_counts, "kept": len(_kept)}


def clear() -> None:
    """Forget the kept frames."""
    with _lock:
        _kept.clear()


def _key(
    table: pd.DataFrame, options: Mapping[str, Any], kind: str | None, fingerprint: str
) -> tuple[Any, ...]:
    framing = {k: v for k, v in options.items() if k not in ESTIMATOR_OPTIONS}
    # the fingerprint hashes Python objects by their text (1 and "1", True and "True" alike):
    # what kinds of values a column of objects holds is part of the key
    held = tuple(
        pd.api.types.infer_dtype(table.iloc[:, i], skipna=True)
        if pd.api.types.is_object_dtype(dtype)
        else ""
        for i, dtype in enumerate(table.dtypes)
    )
    return (
        fingerprint,
        len(table),
        tuple(str(c) for c in table.columns),
        tuple(str(t) for t in table.dtypes),
        held,
        kind,
        json.dumps(framing, sort_keys=True, default=str),
    )


def _copy(frame: Frame) -> Frame:
    """A copy the caller may change: the fit, its warnings and its schema are its own."""
    X, y, features, warns = frame
    copied = [
        {k: list(v) if isinstance(v, list) else v for k, v in feature.items()}
        for feature in features
    ]
    return X.copy(), (None if y is None else y.copy()), copied, list(warns)
