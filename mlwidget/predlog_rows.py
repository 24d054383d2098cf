"""A logged answer's input rows as ``{feature: value}`` records, whatever shape the face got
them in (predlog_write.py types and writes them; predlog_shadow.py predicts them again), and
the log's ``input`` column read back as a table (monitoring.py, replay_work.py)."""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd


def inputs_frame(texts: pd.Series) -> pd.DataFrame:
    """The log's ``input`` JSON texts as a table, one row per record (a missing input: a row
    of nulls). Arrow's JSON reader parses them at once, each column typed as the first rows
    show it (text stays text: no dates inferred); inputs it cannot read as one table (a column
    that is a number in some rows and text in others) are parsed one by one."""
    import pyarrow as pa
    import pyarrow.json as pa_json

    lines = [t if isinstance(t, str) and t.startswith("{") else "{}" for t in texts]
    if not lines:
        return pd.DataFrame(index=range(0))
    fields = _fields([json.loads(t) for t in lines[:SAMPLE_ROWS]])
    if fields is not None:
        options = pa_json.ParseOptions(explicit_schema=pa.schema(fields))
        try:
            data = io.BytesIO("\n".join(lines).encode("utf-8"))
            table = pa_json.read_json(data, parse_options=options)
            if table.num_rows == len(lines) and table.schema.equals(pa.schema(fields)):
                return table.to_pandas()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return pd.DataFrame.from_records([json.loads(t) for t in lines]).reindex(range(len(lines)))


SAMPLE_ROWS = 1000  # rows whose values type the columns of inputs_frame


def _fields(rows: list[dict[str, Any]]) -> list[tuple[str, Any]] | None:
    """Arrow types of the sample's columns: text, true/false or a number (None: a column of
    mixed kinds, or values of another kind)."""
    import pyarrow as pa

    kinds: dict[str, set[Any]] = {}
    for row in rows:
        for key, value in row.items():
            found = kinds.setdefault(str(key), set())
            if value is not None:
                found.add(bool if isinstance(value, bool) else type(value))
    fields = []
    for key, found in kinds.items():
        if found <= {int, float}:
            fields.append((key, pa.float64()))
        elif found == {str}:
            fields.append((key, pa.string()))
        elif found == {bool}:
            fields.append((key, pa.bool_()))
        else:
            return None
    return fields


def raw_rows(rows: Any, kind: str, names: list[str], count: int) -> list[dict[str, Any]]:
    """The rows as ``{feature: value}`` (every column when the model has no schema)."""
    if kind == "columns":  # {column: [values]}: a GET query, V2 columns
        keys = [k for k in (names or rows) if k in rows and not str(k).startswith("_")]
        return [{k: _cell(rows[k], i) for k in keys} for i in range(count)]
    if kind == "frame":
        frame = rows
        if names:
            frame = frame[[c for c in names if c in frame.columns]]
        return list(frame.to_dict("records"))
    records = [rows] if isinstance(rows, dict) else list(rows)
    return [{k: v for k, v in r.items() if not names or k in names} for r in records]


def _cell(values: Any, i: int) -> Any:
    if isinstance(values, list | tuple):
        value = values[i] if i < len(values) else None
    else:
        value = values
    return None if value == "" else value
