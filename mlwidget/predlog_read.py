"""Reading and deleting a model's prediction log (``GET ?_log``, ``DELETE ?_log``,
``MLModel``-free: they take the model for its folder). This process's waiting records are
written first, so a reader sees every answer this process gave; other processes' records
appear within their flush interval (a second)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

import pandas as pd

from . import predlog, predlog_files
from .errors import BadRequest

log = logging.getLogger("mlwidget")

FORMATS = ("json", "csv", "parquet")
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 1_000_000


class Filters(NamedTuple):
    since: pd.Timestamp | None = None
    until: pd.Timestamp | None = None
    version: int | None = None
    limit: int = DEFAULT_LIMIT
    format: str = "json"

    def select(self, frame: pd.DataFrame, time_column: str = "time") -> pd.DataFrame:
        """The rows of ``frame`` (log records or feedback) within since, until and version."""
        keep = pd.Series(True, index=frame.index)
        if self.since is not None:
            keep &= frame[time_column] >= self.since
        if self.until is not None:
            keep &= frame[time_column] <= self.until
        if self.version is not None:
            keep &= frame["version"] == self.version
        return frame[keep]


def _last(args: Mapping[str, Any], key: str) -> str | None:
    values = args.get(key)
    if isinstance(values, list | tuple):
        return str(values[-1]) if values else None
    return None if values is None else str(values)


def _time(key: str, text: str | None) -> pd.Timestamp | None:
    if text is None or text.strip() == "":
        return None
    try:
        stamp = pd.Timestamp(text.strip())
    except (ValueError, TypeError, OverflowError):
        stamp = None
    if stamp is None or pd.isna(stamp):
        raise BadRequest(
            f"Expected {key} as an ISO 8601 time such as 2024-05-01 or 2024-05-01T10:00:00Z "
            f"(UTC unless a zone is given), got {text[:40]!r}."
        )
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def parse_filters(args: Mapping[str, Any]) -> Filters:
    """``since``, ``until``, ``version``, ``limit`` and ``_format`` of a ``?_log`` (or
    ``?_feedback``) query, or a BadRequest naming the one that is wrong."""
    from .options import parse_count

    since, until = _time("since", _last(args, "since")), _time("until", _last(args, "until"))
    version, limit = _last(args, "version"), _last(args, "limit")
    fmt = _last(args, "_format") or "json"
    if fmt not in FORMATS:
        raise BadRequest(
            f"Expected _format={' or '.join(FORMATS)} with ?_log or ?_feedback, got {fmt[:40]!r}."
        )
    return Filters(
        since,
        until,
        None if not version else parse_count("version", version, least=1, meaning="a version"),
        DEFAULT_LIMIT
        if not limit
        else parse_count("limit", limit, least=1, most=MAX_LIMIT, meaning="the newest records"),
        fmt,
    )


def read(model: Any, filters: Filters = Filters()) -> pd.DataFrame:
    """The log's records that pass ``filters``, oldest first (the newest ``limit`` of them):
    the columns of predlog_files.COLUMNS, ``input``, ``prediction`` and ``proba`` as JSON
    text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = model.snapshot().folder
    predlog.flush(folder)
    options = model.options
    predlog_files.prune(folder, None, options.get("log_days"))
    tables = []
    for path in predlog_files.segments(folder):
        if filters.since is not None and predlog_files.written_at(path) < filters.since.timestamp():
            continue  # every record of a segment is older than the segment
        try:
            tables.append(pq.read_table(path, schema=predlog_files.arrow_schema()))
        except (OSError, pa.ArrowException) as exc:  # not ours, or gone meanwhile
            log.warning("mlwidget: skipped log segment %s: %s", path.name, exc)
    if not tables:
        return predlog_files.arrow_schema().empty_table().to_pandas()
    frame = pa.concat_tables(tables).to_pandas()
    frame = filters.select(frame).sort_values("time", kind="stable")
    return frame.tail(filters.limit).reset_index(drop=True)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The JSON answer: one object per record, its JSON fields parsed, times in ISO 8601."""
    times = iso_times(frame["time"])
    versions = whole_or_none(frame["version"])
    latencies = frame["latency_ms"].astype(float).tolist()
    shadows = [v if isinstance(v, str) else None for v in frame["shadow_of"]]
    texts = {c: [_parsed(v) for v in frame[c]] for c in ("input", "prediction", "proba")}
    return [
        {
            "id": str(frame["id"].iat[i]),
            "time": times[i],
            "version": versions[i],
            "face": str(frame["face"].iat[i]),
            "caller": str(frame["caller"].iat[i]),
            "input": texts["input"][i],
            "prediction": texts["prediction"][i],
            "proba": texts["proba"][i],
            "latency_ms": latencies[i],
            "shadow_of": shadows[i],
        }
        for i in range(len(frame))
    ]


def iso_times(stamps: pd.Series) -> list[str | None]:
    """UTC times as ``2024-05-01T10:00:00.123Z`` (to the millisecond; None where missing): a
    record's times in the JSON answers of ``?_log`` and ``?_feedback``."""
    text = stamps.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
    return [None if pd.isna(t) else str(t) for t in text]


def whole_or_none(values: pd.Series) -> list[int | None]:
    """The values as ints, None where missing (a record's version)."""
    return [None if pd.isna(v) else int(v) for v in values]


def _parsed(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) and text else None


def flat(frame: pd.DataFrame) -> pd.DataFrame:
    """The table a file answer holds (csv, parquet): times as ISO 8601 text in csv."""
    out = frame.copy()
    out["version"] = out["version"].astype("Int64")
    return out


def delete(model: Any) -> dict[str, Any]:
    """Remove the log (this process's waiting records too); Gramex-style idempotent answer."""
    folder = model.snapshot().folder
    predlog.discard(folder)
    gone = predlog_files.remove_all(folder)
    done = ["log"] if gone else []
    return {
        "name": model.name,
        "deleted": done,
        "absent": [] if gone else ["log"],
        "segments": gone,
    }
