"""A logged answer's input rows as ``{feature: value}`` records, whatever shape the face got
them in (predlog_write.py types and writes them; predlog_shadow.py predicts them again)."""

from __future__ import annotations

from typing import Any


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
