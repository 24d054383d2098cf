"""One conversion of numpy, pandas and scikit-learn values into JSON-safe Python values.

:func:`to_jsonable` is the one place that decides how a value is written in an answer (REST,
``MLModel`` predictions, the widgets) and in ``state.json``. The contract:

- ``None``, ``bool``, ``str``, ``int`` and finite ``float`` stay as they are (subclasses become
  the plain type); numpy scalars become the Python scalar (``np.int64(3)`` -> ``3``).
- Missing values are ``None`` (JSON ``null``): NaN and ±inf (JSON has no such numbers), ``NaT``
  (numpy or pandas) and ``pd.NA``.
- numpy arrays, scipy sparse matrices, pandas Series / Index / DataFrame (rows), lists and
  tuples become (nested) lists; mappings become dicts with string keys.
- Dates and times become ISO 8601 text (``pd.Timestamp("2024-01-02")`` ->
  ``"2024-01-02T00:00:00"``), durations ISO 8601 durations (``"P0DT0H1M0S"``).
- An estimator becomes its class name, a class its name; anything else its ``repr``.

Estimator parameters are the one exception, ``nan="nan"``: a non-finite float is written as its
text (``"nan"``, ``"inf"``, ``"-inf"``), which ``estimators.parse_params`` reads back as the same
float. ``None`` would read back as ``None``: ``SimpleImputer(missing_values=np.nan)`` stored as
``null`` would come back as ``SimpleImputer(missing_values=None)``, a different imputer.

:func:`dumps` is the JSON text of an answer (REST bodies, a job's stored result): plain values
as they are, anything else through :func:`to_jsonable`.

This module imports no other mlwidget module (everything may import it).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

NAN_SPELLINGS = (None, "nan")


def to_jsonable(value: Any, nan: str | None = None) -> Any:
    """``value`` as JSON-safe Python values (see the module's contract).

    ``nan``: how a non-finite float is written: ``None`` (JSON null, the default, for answers)
    or ``"nan"`` (its text, ``"nan"`` / ``"inf"`` / ``"-inf"``, for estimator parameters)."""
    if nan not in NAN_SPELLINGS:
        raise ValueError(f"nan must be None or 'nan', not {nan!r}")
    return _walk(value, nan)


def dumps(obj: Any) -> str:
    """JSON text of an answer: plain values as they are (predictions from the core are plain
    Python values already: no walk needed), NaN / NaT / infinity as null."""
    try:
        return json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(to_jsonable(obj))


def _non_finite(value: float, nan: str | None) -> str | None:
    return None if nan is None else str(float(value))  # "nan", "inf", "-inf"


def _walk(value: Any, nan: str | None) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # np.float64 too (a float subclass)
        return float(value) if math.isfinite(value) else _non_finite(value, nan)
    if isinstance(value, Mapping):
        return {str(k): _walk(v, nan) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, nan) for v in value]
    if isinstance(value, np.ndarray):
        return _array(value, nan)
    if isinstance(value, np.datetime64 | np.timedelta64):
        if np.isnat(value):
            return None
        return _walk(
            pd.Timestamp(value) if isinstance(value, np.datetime64) else pd.Timedelta(value), nan
        )
    if isinstance(value, np.generic):
        return _walk(value.item(), nan)
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.DataFrame | pd.Series | pd.Index | pd.api.extensions.ExtensionArray):
        dtypes = value.dtypes if isinstance(value, pd.DataFrame) else [value.dtype]
        plain = all(isinstance(d, np.dtype) for d in dtypes)  # else nullable: keep ints, NA
        return _array(value.to_numpy() if plain else value.to_numpy(dtype=object), nan)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return pd.Timedelta(value).isoformat()
    if isinstance(value, type):
        return value.__name__
    # A value of these kinds exists only once its module is loaded: no import needed here.
    sparse = sys.modules.get("scipy.sparse")
    if sparse is not None and sparse.issparse(value):
        return _array(value.toarray(), nan)
    base = sys.modules.get("sklearn.base")
    if base is not None and isinstance(value, base.BaseEstimator):
        return type(value).__name__
    return repr(value)


def _array(arr: np.ndarray, nan: str | None) -> Any:
    """Whole arrays at once where they are plain numbers (predictions: no call per value)."""
    if arr.ndim == 0:
        return _walk(arr[()], nan)
    kind = arr.dtype.kind
    if kind in "iub":
        return arr.tolist()
    if kind == "f":
        finite = np.isfinite(arr)
        if finite.all():
            return arr.tolist()
        out = arr.astype(object)
        bad = ~finite
        out[bad] = [_non_finite(v, nan) for v in arr[bad].tolist()]
        return out.tolist()
    if kind in "mM":  # .tolist() would give nanoseconds as int
        return [_walk(v, nan) for v in arr]
    return [_walk(v, nan) for v in arr.tolist()]
