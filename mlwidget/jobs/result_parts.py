"""A Dask bulk job's answer, partition by partition (see ``DaskExecutor._partitions``).

Each partition's task makes the JSON text of its answers on its worker, as a job on a worker
process does for the whole answer (results.py), but without the list's brackets: a
``Fragment``. A worker that sees the store (its id at the staging folder: shared storage, or
the same machine, as for a fit's model file) writes its fragment into a file beside the job's
result file and sends back only its name and counts; any other worker sends the text back.
The server then joins the fragments into the job's result file in the rows' order with plain
byte copies: it never rebuilds the answers as Python values, nor encodes them again (a
200,000-row ``predict_table`` answer held 200,000 dicts in the server, pickled, unpickled and
encoded again there).

A failed or cancelled job's part files go with its result (``remove_parts``, called beside
``results.remove_partial``); one a worker still wrote after the cancel goes with the staging
folder's sweep (a day later, store.py).
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..jsonable import dumps
from .results import StoredResult

PART = ".part-"  # a part file is named after the job's result file: result-<job>-<pid>.json.part-3


def part_path(result_path: str, index: int) -> str:
    """Where the worker of partition ``index`` writes its fragment, beside ``result_path``."""
    return f"{result_path}{PART}{index}"


@dataclass
class Fragment:
    """The answers of one partition as JSON text without the list's brackets (items separated
    by commas): ``text``, or the file ``path`` its worker wrote it to. ``columns`` (records) and
    ``labels`` (probabilities) are what the first item shows, as ``StoredResult`` keeps them."""

    rows: int = 0
    text: bytes = b""
    path: str | None = None
    columns: list[str] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)

    def copy_to(self, out: IO[bytes]) -> None:
        """Write the text to ``out``; a part file is removed once copied."""
        if self.path is None:
            out.write(self.text)
            return
        with open(self.path, "rb") as part:
            shutil.copyfileobj(part, out, 1024 * 1024)
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class FragmentWriter:
    """Writes a partition's answers a chunk at a time (``add``), as ``ResultWriter`` does, into
    memory, or into ``path`` (through a temporary file, so a half-written part never shows
    under its name); ``close()`` gives the ``Fragment``. Not closed (an error): nothing kept."""

    def __init__(self, path: str | None, kind: str) -> None:
        self.path, self.kind = path, kind
        self.rows = 0
        self.columns: list[str] = []
        self.labels: list[Any] = []
        self._tmp: str | None = None
        self._handle: IO[bytes]
        if path is None:
            self._handle = io.BytesIO()
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._tmp = f"{path}.tmp"
            self._handle = open(self._tmp, "wb")  # noqa: SIM115 -- closed by close/abandon

    def add(self, items: list[Any]) -> None:
        if not items or self._handle.closed:
            return
        first = items[0]
        if not self.columns and isinstance(first, dict) and self.kind == "records":
            self.columns = [str(key) for key in first]
        if not self.labels and isinstance(first, dict) and self.kind == "probabilities":
            self.labels = list(first)
        text = dumps(items)[1:-1].encode()
        self._handle.write(text if self.rows == 0 else b"," + text)
        self.rows += len(items)

    def close(self) -> Fragment:
        fragment = Fragment(self.rows, columns=self.columns, labels=self.labels)
        if self._tmp is None:
            assert isinstance(self._handle, io.BytesIO)
            fragment.text = self._handle.getvalue()
            self._handle.close()
            return fragment
        self._handle.close()
        assert self.path is not None
        os.replace(self._tmp, self.path)
        fragment.path = self.path
        return fragment

    def abandon(self) -> None:
        self._handle.close()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)

    def __enter__(self) -> FragmentWriter:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is not None:
            self.abandon()


def join(path: str, kind: str, fragments: Iterable[Fragment]) -> StoredResult:
    """The job's result file at ``path``: the ``fragments`` in order, as one JSON list (the
    same list a worker process writes, chunk by chunk, for the whole answer)."""
    tmp = f"{path}.tmp"
    rows = 0
    columns: list[str] = []
    labels: list[Any] = []
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(tmp, "wb") as out:
            out.write(b"[")
            for fragment in fragments:
                if not fragment.rows:
                    fragment.copy_to(io.BytesIO())  # (removes an empty part file)
                    continue
                if rows:
                    out.write(b",")
                fragment.copy_to(out)
                rows += fragment.rows
                columns = columns or fragment.columns
                labels = labels or fragment.labels
            out.write(b"]")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        remove_parts(path)  # what a retry's first attempt left, or the rest after an error
    return StoredResult(path, kind, rows, os.path.getsize(path), columns, labels)


def remove_parts(path: str) -> None:
    """Remove the part files (and their temporary files) of the result ``path``."""
    for leftover in glob.glob(glob.escape(path) + PART + "*"):
        with contextlib.suppress(OSError):
            os.unlink(leftover)
