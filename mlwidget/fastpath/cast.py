"""Input casting: a few rows (a dict, records, columns, a small DataFrame or a GET query) as
``{feature: [values]}``, each value cast as ``schema.cast`` casts it, or ``Unsupported`` when
only pandas would read the value alike (the pipeline then answers, or gives its error)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..sources import is_source
from .base import MAX_ROWS, Unsupported

_INT_LIMIT = 2**53
# Strings that float() and pandas.to_numeric read identically (verified on 200,000 samples);
# anything else (blanks aside) is left to the pipeline path, which casts with pandas.
# (ASCII digits only: float() also reads other scripts' digits, pandas does not.)
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z", re.ASCII)


# ---------------------------------------------------------------------------------------------
# casting one value as schema.cast does


def as_number(value: Any) -> float | None:
    kind = type(value)
    if kind is float:
        return None if value != value else value
    if kind is str:
        if _NUMBER.match(value):
            if len(value) > 16 and "." not in value and "e" not in value and "E" not in value:
                raise Unsupported  # long integers: pandas may read them as uint64
            return float(value)
        if not value.strip():
            return None
        raise Unsupported
    if value is None:
        return None
    if kind is int:
        if -_INT_LIMIT <= value <= _INT_LIMIT:
            return float(value)
        raise Unsupported
    if isinstance(value, np.floating | np.integer) and not isinstance(value, np.bool_):
        out = float(value)
        if isinstance(value, np.integer) and not -_INT_LIMIT <= out <= _INT_LIMIT:
            raise Unsupported
        return None if out != out else out
    raise Unsupported  # bools, nested values, pandas NA, dates...


def as_text(value: Any) -> str | None:
    kind = type(value)
    if kind is str:
        return None if value == "" else value
    if value is None:
        return None
    if kind is float:
        if value != value:
            return None
        return str(int(value)) if value.is_integer() else str(value)
    if kind is int and -_INT_LIMIT <= value <= _INT_LIMIT:
        return str(value)
    raise Unsupported


# ---------------------------------------------------------------------------------------------
# input shapes -> {feature: [values]}


def columns_from_query(args: Mapping[str, Any], names: list[str]) -> dict[str, list[Any]]:
    cols = {k: v for k, v in args.items() if not k.startswith("_")}
    n = None
    for values in cols.values():
        if not isinstance(values, list | tuple):
            raise Unsupported
        if n is None:
            n = len(values)
        elif len(values) != n:
            raise Unsupported  # ragged: from_query's message
    if not n or n > MAX_ROWS:
        raise Unsupported
    out = {}
    for name in names:
        values = cols.get(name)
        if values is None:
            raise Unsupported  # missing feature: _features_frame's message
        out[name] = [
            None
            if v == "" or v == b""
            else (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
            for v in values
        ]
    return out


def columns_from_data(data: Any, names: list[str]) -> dict[str, list[Any]]:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        if not 0 < len(data) <= MAX_ROWS or not data.columns.is_unique:
            raise Unsupported
        for i, dtype in enumerate(data.dtypes):  # a list or dict cell anywhere: read_table's 400
            if dtype.kind == "O" and any(_nested(v) for v in data.iloc[:, i]):
                raise Unsupported
        out = {}
        for name in names:
            if name not in data.columns:
                raise Unsupported
            col = data[name]
            if col.dtype.kind not in "iufO":
                raise Unsupported
            out[name] = col.tolist()
        return out
    if isinstance(data, Mapping):
        if not data or is_source(data):
            raise Unsupported
        values = list(data.values())
        if all(type(v) is list for v in values):  # {column: [values]}
            lengths = {len(v) for v in values}
            if len(lengths) != 1 or not 0 < lengths.pop() <= MAX_ROWS:
                raise Unsupported
            if any(_nested(v) for column in values for v in column):
                raise Unsupported
            if not all(name in data for name in names):
                raise Unsupported
            return {name: list(data[name]) for name in names}
        if any(isinstance(v, list | dict | tuple) for v in values):
            raise Unsupported
        rows = [data]  # one record
    elif isinstance(data, list | tuple):
        if not 0 < len(data) <= MAX_ROWS or not all(isinstance(r, Mapping) for r in data):
            raise Unsupported
        rows = list(data)
        if any(_nested(v) for row in rows for v in row.values()):
            raise Unsupported
    else:
        raise Unsupported
    out = {}
    for name in names:
        if not any(name in row for row in rows):
            raise Unsupported
        out[name] = [row.get(name) for row in rows]
    return out


def _nested(value: Any) -> bool:
    """A list, dict or tuple cell: tables refuse them (a 400), so the fast path declines."""
    return isinstance(value, list | dict | tuple)
