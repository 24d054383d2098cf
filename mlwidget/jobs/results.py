"""A bulk job's answer kept on disk, not in the memory of the process that serves it.

A prediction job (``predict``, ``predict_proba``, ``predict_table``) writes its answer, a JSON
list, to a file in the model's staging folder of the store (``<store>/<name>/.jobs/``) as it
predicts, chunk by chunk, in whichever process runs the work (a worker process, or the server's
thread). What travels back to the server is a ``StoredResult``: the file's path and a summary
(rows, bytes, columns). ``?_job=ID&_result`` streams the file; ``Job.result()`` in Python reads
it back into the same list the call without a job returns.

Files go when their job is forgotten (``job_board.KEEP`` jobs per model, ``KEEP_BYTES`` of
results per process, oldest first), when the process ends, and, for a process killed before it
could remove them, at the model's next commit (the process id is in the file's name; see
store.py).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from ..jsonable import dumps

READ_BYTES = 1024 * 1024  # bytes read from a result file at a time when it is streamed
KEEP_BYTES = 1024**3  # result bytes a process keeps on disk; past it the oldest jobs' go


def result_path(staging: str | os.PathLike[str], job_id: str) -> str:
    """Where the job ``job_id`` of this process writes its answer: the process id is in the
    name, so a file left by a killed server is known as abandoned."""
    return str(Path(staging) / f"result-{job_id}-{os.getpid()}.json")


@dataclass
class StoredResult:
    """A job's answer in a file: a JSON list of ``rows`` items (``kind``: predictions,
    probabilities, or records with ``columns``)."""

    path: str
    kind: str
    rows: int = 0
    bytes: int = 0
    columns: list[str] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)  # probabilities' classes, as Python values

    def summary(self, url: str | None = None) -> dict[str, Any]:
        """What ``?_job`` shows of the answer: its size and where to fetch it, not its rows."""
        out: dict[str, Any] = {"rows": self.rows, "bytes": self.bytes, "kind": self.kind}
        if self.columns:
            out["columns"] = self.columns
        if url is not None:
            out["url"] = url
        return out

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def load(self) -> Any:
        """The answer as Python values (the list the call without a job returns)."""
        with open(self.path, encoding="utf-8") as handle:
            rows = json.load(handle)
        if self.labels:  # JSON made the classes' keys text: 0 -> "0"
            keys = [(_json_key(label), label) for label in self.labels]
            rows = [{label: row[key] for key, label in keys} for row in rows]
        return rows

    def open(self) -> BinaryIO:
        return open(self.path, "rb")

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


@dataclass
class Summarized:
    """A job's answer that is a summary (a dict) with rows kept on disk beside it (a replay's
    differing rows): ``Job.result()`` is the summary, ``?_job=ID&_result`` streams the rows."""

    summary: dict[str, Any]
    stored: StoredResult

    def remove(self) -> None:
        self.stored.remove()


class ResultWriter:
    """Writes a JSON list to ``path`` a piece at a time: ``add(items)`` per chunk of rows,
    ``close()`` at the end gives the ``StoredResult``. A writer not closed (an error, a cancel)
    removes its file."""

    def __init__(self, path: str, kind: str) -> None:
        self.path, self.kind = path, kind
        self.rows = 0
        self.columns: list[str] = []
        self.labels: list[Any] = []
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._tmp = f"{path}.tmp"
        self._handle: IO[str] | None = open(self._tmp, "w", encoding="utf-8")
        self._handle.write("[")

    def add(self, items: list[Any]) -> None:
        if not items or self._handle is None:
            return
        if not self.columns and isinstance(items[0], dict) and self.kind == "records":
            self.columns = [str(key) for key in items[0]]
        if not self.labels and isinstance(items[0], dict) and self.kind == "probabilities":
            self.labels = list(items[0])
        text = dumps(items)[1:-1]
        self._handle.write(text if self.rows == 0 else "," + text)
        self.rows += len(items)

    def close(self) -> StoredResult:
        assert self._handle is not None
        self._handle.write("]")
        self._handle.close()
        self._handle = None
        os.replace(self._tmp, self.path)
        size = os.path.getsize(self.path)
        return StoredResult(self.path, self.kind, self.rows, size, self.columns, self.labels)

    def abandon(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is not None:
            self.abandon()


def _json_key(label: Any) -> str:
    """The text JSON makes of ``label`` as an object's key."""
    return next(iter(json.loads(json.dumps({label: 0}))))


def stored_table(stored: StoredResult) -> Any:
    """The answer as a table, for another ``_format`` than JSON: records as they are,
    probabilities a column per class, predictions one ``prediction`` column."""
    import pandas as pd

    rows = stored.load()
    if stored.kind == "predictions":
        if rows and isinstance(rows[0], list):  # a transformer: a column per component
            return pd.DataFrame(rows, columns=[f"component_{i}" for i in range(len(rows[0]))])
        return pd.DataFrame({"prediction": rows})
    return pd.DataFrame.from_records(rows)


def remove_partial(path: str) -> None:
    """Remove what a writer killed mid-answer left at ``path`` (its temp file)."""
    for leftover in (f"{path}.tmp", path):
        with contextlib.suppress(OSError):
            os.unlink(leftover)


def write(path: str, kind: str, items: list[Any]) -> StoredResult:
    """A whole answer written at once (a Dask job's gathered partitions)."""
    with ResultWriter(path, kind) as writer:
        writer.add(items)
        return writer.close()


class _Kept:
    """The result files of this process's jobs (written by it or by its worker processes),
    removed when it exits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: set[str] = set()
        atexit.register(self.clear)

    def add(self, path: str) -> None:
        with self._lock:
            self._paths.add(path)

    def discard(self, path: str) -> None:
        with self._lock:
            self._paths.discard(path)

    def clear(self) -> None:
        with self._lock:
            paths, self._paths = self._paths, set()
        for path in paths:
            with contextlib.suppress(OSError):
                os.unlink(path)


kept = _Kept()
