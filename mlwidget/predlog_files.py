"""The prediction log's files: Parquet segments in ``<store>/<model>/log/``.

A segment is written whole under a temporary name and renamed into place, so a reader sees
every segment complete or not at all (a process killed while writing leaves a ``.tmp`` file
that readers ignore and the next flush removes). Names sort by time and never collide across
processes: ``seg-<unix ms, 13 digits>-<pid>-<counter>.parquet``.

Retention: the oldest segments go once the log is over its size cap (the newest segment
always stays, even alone over it), and segments written more than ``log_days`` ago go too.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LOG_DIR = "log"
SEGMENT = re.compile(r"seg-(\d{13})-(\d+)-(\d+)\.parquet")  # fullmatch
DEBRIS_AGE = 3600.0  # seconds after which a half-written segment is removed
# The record's fields, in order (docs/monitoring.md); input, prediction and proba are JSON text.
# ``shadow_of``: a shadow version's answer names the served answer's id (predlog_shadow.py);
# segments written before it existed read it as null.
COLUMNS = (
    "id", "time", "version", "face", "caller", "input", "prediction", "proba", "latency_ms",
    "shadow_of",
)  # fmt: skip
_serial = itertools.count()


def log_dir(folder: str | os.PathLike[str]) -> Path:
    """The model folder's ``log/`` subfolder (it may not exist yet)."""
    return Path(folder) / LOG_DIR


def segments(folder: str | os.PathLike[str]) -> list[Path]:
    """The model's complete segments, oldest first."""
    try:
        names = os.listdir(log_dir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [log_dir(folder) / n for n in sorted(n for n in names if SEGMENT.fullmatch(n))]


def written_at(path: Path) -> float:
    """When a segment was written (seconds since the epoch), from its name."""
    match = SEGMENT.fullmatch(path.name)
    return int(match.group(1)) / 1000 if match else 0.0


def arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("time", pa.timestamp("ms", tz="UTC")),
            ("version", pa.int64()),
            ("face", pa.string()),
            ("caller", pa.string()),
            ("input", pa.string()),
            ("prediction", pa.string()),
            ("proba", pa.string()),
            ("latency_ms", pa.float64()),
            ("shadow_of", pa.string()),
        ]
    )


def write_segment(folder: str | os.PathLike[str], columns: Mapping[str, list[Any]]) -> Path:
    """Write one segment of records (``COLUMNS`` -> values; ``time`` in epoch milliseconds)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = log_dir(folder)
    target.mkdir(parents=True, exist_ok=True)
    name = f"seg-{int(time.time() * 1000):013d}-{os.getpid()}-{next(_serial)}.parquet"
    table = pa.Table.from_pydict({c: columns[c] for c in COLUMNS}, schema=arrow_schema())
    tmp = target / f".{name}.tmp"
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, target / name)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target / name


def prune(
    folder: str | os.PathLike[str], max_mb: float | None, days: float | None, now: float = 0.0
) -> int:
    """Remove segments past the size cap (oldest first; the newest stays) or older than
    ``days``, and half-written debris; returns how many segments went."""
    now = now or time.time()
    found = segments(folder)
    gone = 0
    if days:
        for path in [p for p in found if written_at(p) < now - days * 86400]:
            gone += _remove(path)
        found = segments(folder)
    if max_mb:
        sizes = []
        for path in found:
            with contextlib.suppress(OSError):
                sizes.append((path, path.stat().st_size))
        total = sum(size for _, size in sizes)
        for path, size in sizes[:-1]:
            if total <= max_mb * 1024 * 1024:
                break
            gone += _remove(path)
            total -= size
    with contextlib.suppress(OSError):
        for path in log_dir(folder).iterdir():
            old = path.name.endswith(".tmp") and now - path.stat().st_mtime > DEBRIS_AGE
            if old:
                _remove(path)
    return gone


def remove_all(folder: str | os.PathLike[str]) -> int:
    """Remove every segment (``DELETE ?_log``); returns how many went."""
    return sum(_remove(path) for path in segments(folder))


def _remove(path: Path) -> int:
    try:
        path.unlink()
    except OSError:
        return 0  # another process removed it first
    return 1
