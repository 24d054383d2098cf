"""Buffered log entries (predlog.py) made into records and written as one segment: each input
row typed by the feature schema of the state that answered (so ``Age=22`` from a query and
``22`` from JSON are the same ``22.0``), features only, as JSON text; the predictions and
probabilities as JSON text. A shadowed answer's candidate predicts its rows here too
(predlog_shadow.py). Runs on the flusher thread, off the request path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import predlog_files, predlog_rows, predlog_shadow
from .jsonable import dumps


def write_entries(folder: str, entries: Sequence[Any]) -> None:
    """One segment of ``entries`` (predlog.Entry) in ``folder``'s log, then the log pruned to
    the newest entry's ``log_max_mb`` and ``log_days``."""
    if not entries:
        return
    columns: dict[str, list[Any]] = {c: [] for c in predlog_files.COLUMNS}
    columns["input"] = inputs(entries)
    for e in entries:
        n = e.size
        columns["id"] += [f"{e.token}-{i}" for i in range(e.first, e.first + n)]
        columns["time"] += [int(e.time * 1000)] * n
        columns["version"] += [e.version] * n
        columns["face"] += [e.face] * n
        columns["caller"] += [e.caller] * n
        columns["prediction"] += [dumps(p) for p in e.predictions]
        proba = e.proba if e.proba is not None else [None] * n
        columns["proba"] += [None if p is None else dumps(p) for p in proba]
        columns["latency_ms"] += [round(e.latency_ms, 3)] * n
    columns["shadow_of"] = [None] * len(columns["id"])
    shadows = predlog_shadow.records(entries, columns["input"], columns["id"])
    for column, values in shadows.items():
        columns[column] += values
    predlog_files.write_segment(folder, columns)
    last = entries[-1]
    predlog_files.prune(folder, last.max_mb, last.days)


def inputs(entries: Sequence[Any]) -> list[str]:
    """The typed input rows of ``entries``, as JSON text, one per logged row: consecutive
    entries of the same schema are typed together (one table)."""
    out: list[str] = []
    run: list[dict[str, Any]] = []
    schema: Any = None
    for e in entries:
        if run and e.schema is not schema:
            out += typed(run, schema)
            run = []
        schema = e.schema
        rows = predlog_rows.raw_rows(e.rows, e.kind, [f["name"] for f in e.schema or []], e.size)
        run += (rows + [{}] * e.size)[: e.size]  # exactly one input per logged row
    if run:
        out += typed(run, schema)
    return out


def typed(rows: list[dict[str, Any]], schema: Any) -> list[str]:
    """``rows`` cast by ``schema`` (as predictions cast them), as JSON text; as given when
    they cannot be cast."""
    import pandas as pd

    from . import schema as schema_

    frame = pd.DataFrame.from_records(rows)
    features = [f for f in schema or [] if f["name"] in frame.columns]
    if features:
        try:
            frame = schema_.cast(frame[[f["name"] for f in features]], features)
        except Exception:  # noqa: S110 -- the rows as they came, then
            pass
    return [dumps(row) for row in frame.to_dict("records")]
