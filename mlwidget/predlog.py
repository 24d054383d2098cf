"""The prediction log (docs/monitoring.md): opt-in per model, one record per predicted row.

A face (REST GET and POST, V2, the widget's Predict tab, Python when ``log_python`` is on)
calls :func:`answered` once it has its answer. That is a cheap append to this process's buffer
(no I/O, no pandas): the row ids come back at once, for the answer to carry. A background
thread (one per process) writes the buffer every second, or sooner past ``FLUSH_RECORDS``
rows, and at exit, as Parquet segments in the model's ``log/`` folder (predlog_files.py); it
types each input row by the model's feature schema there, off the request path.

Ids are ``<process token>-<n>``: a random token per process and a counter, so the rows of one
answer have consecutive ids and processes never collide. ``log_sample`` keeps a share of the
answers (all the rows of a kept answer), deterministically: of every answer the model gives in
a process, the k-th is kept when ``floor(k * rate) > floor((k - 1) * rate)``.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from . import access
from .predlog_options import LOG_OPTIONS

log = logging.getLogger("mlwidget")

FACES = ("get", "post", "v2", "widget", "python")
FLUSH_EVERY = 1.0  # seconds between flushes
FLUSH_RECORDS = 1000  # rows waiting that wake the flusher early
HEADER_IDS = 1000  # more rows than this: X-Prediction-Id is a range "<first>..<last>"

# The face serving the current request or callback (None: a plain Python call). A face sets
# it so that the MLModel calls it makes are not logged a second time as Python's.
FACE: contextvars.ContextVar[str | None] = contextvars.ContextVar("mlwidget_face", default=None)


class Logged(NamedTuple):
    """The ids of one logged answer's rows: ``<token>-<first>`` onwards, ``size`` of them."""

    token: str
    first: int
    size: int

    def ids(self) -> list[str]:
        return [f"{self.token}-{n}" for n in range(self.first, self.first + self.size)]

    def header(self) -> str:
        """``X-Prediction-Id``: the ids, comma-separated; past HEADER_IDS rows, the range
        ``<first>..<last>`` (the ids between are consecutive)."""
        if self.size <= HEADER_IDS:
            return ",".join(self.ids())
        last = self.first + self.size - 1
        return f"{self.token}-{self.first}..{self.token}-{last}"


class Entry(NamedTuple):
    """One logged answer, as buffered (its rows are typed when written)."""

    first: int
    size: int
    token: str
    time: float
    version: int | None
    face: str
    caller: str
    rows: Any  # {column: [values]} ("columns"), a DataFrame ("frame") or records ("records")
    kind: str
    predictions: list[Any]
    proba: list[Any] | None
    latency_ms: float
    schema: Any  # the feature schema of the state that answered
    shadow: Any  # (ModelRepo, version) of the candidate that shadows the answer, or None
    max_mb: float
    days: float


class Buffer:
    """This process's records waiting to be written, by model folder, and its flusher."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.flushing = threading.Lock()  # one writer at a time: the flusher, a reader, exit
        self.pending: dict[str, list[Entry]] = {}
        self.rows = 0
        self.seen: dict[str, int] = {}  # answers per model, for log_sample
        self.next = 0
        self.token = uuid.uuid4().hex[:12]
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, folder: str, options: Mapping[str, Any], **fields: Any) -> Logged | None:
        rate = float(options.get("log_sample") or 1.0)
        count = len(fields["predictions"])
        with self.lock:
            if rate < 1.0:
                k = self.seen[folder] = self.seen.get(folder, 0) + 1
                if math.floor(k * rate) == math.floor((k - 1) * rate):
                    return None
            first, self.next = self.next, self.next + count
            entry = Entry(
                first, count, self.token, time.time(), **fields,
                max_mb=float(options.get("log_max_mb") or LOG_OPTIONS["log_max_mb"]),
                days=float(options.get("log_days") or LOG_OPTIONS["log_days"]),
            )  # fmt: skip
            self.pending.setdefault(folder, []).append(entry)
            self.rows += count
            busy = self.rows >= FLUSH_RECORDS
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name="mlwidget-log", daemon=True)
                self.thread.start()
        if busy:
            self.wake.set()
        return Logged(self.token, first, count)

    def run(self) -> None:
        while True:
            self.wake.wait(FLUSH_EVERY)
            self.wake.clear()
            self.flush()

    def take(self, folder: str | None) -> dict[str, list[Entry]]:
        with self.lock:
            if folder is None:
                taken, self.pending, self.rows = self.pending, {}, 0
                return taken
            entries = self.pending.pop(folder, [])
            self.rows -= sum(e.size for e in entries)
            return {folder: entries} if entries else {}

    def flush(self, folder: str | None = None) -> None:
        """Write what waits (for one model folder, or all) as one segment per model."""
        with self.flushing:
            for key, entries in self.take(folder).items():
                if not Path(key).is_dir():
                    continue  # the model was removed meanwhile
                try:
                    from .predlog_write import write_entries

                    write_entries(key, entries)
                except Exception:  # never the request's problem; the rows are lost
                    log.exception("mlwidget: could not write %d logged rows", len(entries))


_buffer = Buffer()


def _fresh_buffer() -> None:
    """In a forked child: its own buffer, token and flusher (the parent's are not its)."""
    global _buffer
    _buffer = Buffer()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_buffer)
atexit.register(lambda: _buffer.flush())


def answered(
    model: Any,
    face: str,
    rows: Any,
    predictions: list[Any] | None,
    started: float,
    proba: list[Any] | None = None,
    kind: str = "frame",
    version: int | None = None,
) -> Logged | None:
    """Log one answer of ``model`` (an MLModel) if its ``log_predictions`` option is on (and
    the sample keeps it); returns its rows' ids, else None. ``rows``: the input as the face
    got it (``kind``: "columns" for ``{column: [values]}``, "frame", "records"); ``started``:
    ``time.perf_counter()`` when the face began; ``version``: the one that answered (default:
    the serving one)."""
    snap = model.repo.snapshots.cached or model.snapshot()
    options = snap.state.get("options") or {}
    if not options.get("log_predictions") or not predictions:
        return None
    if version is None:
        from .versions import serving

        version = serving(snap.state)
    latency_ms = (time.perf_counter() - started) * 1000
    shadow = options.get("shadow")  # predicted by the flusher (predlog_shadow.py), not here
    candidate = (model.repo, int(shadow)) if shadow is not None and shadow != version else None
    return _buffer.add(
        str(snap.folder), options, version=version, face=face, caller=access.acting(),
        rows=rows, kind=kind, predictions=predictions, proba=proba, latency_ms=latency_ms,
        schema=snap.state.get("schema"), shadow=candidate,
    )  # fmt: skip


def python_call(
    model: Any, data: Any, predictions: list[Any], started: float, proba: Any = None
) -> None:
    """``model.predict(...)`` / ``predict_proba(...)`` called from Python (no face): logged
    when the model's ``log_predictions`` and ``log_python`` are both on; the ids are then
    ``model.last_prediction_ids``."""
    if FACE.get() is not None:
        return
    snap = model.repo.snapshots.cached
    options = (snap.state.get("options") or {}) if snap is not None else {}
    if not (options.get("log_predictions") and options.get("log_python")):
        return
    import pandas as pd

    from .tables import read_table

    if not isinstance(data, pd.DataFrame | dict | list | str | os.PathLike):
        return  # chunks of rows (consumed by now): not logged
    frame = read_table(data).copy()  # the caller may change its table afterwards
    logged = answered(model, "python", frame, predictions, started, proba=proba)
    model.last_prediction_ids = logged.ids() if logged is not None else []


@contextlib.contextmanager
def facing(face: str) -> Iterator[None]:
    """Inside: calls of MLModel are a face's (it logs its own answer), not Python's."""
    token = FACE.set(face)
    try:
        yield
    finally:
        FACE.reset(token)


def flush(folder: str | os.PathLike[str] | None = None) -> None:
    """Write this process's waiting records now (of one model folder, or all)."""
    _buffer.flush(None if folder is None else str(folder))


def discard(folder: str | os.PathLike[str]) -> None:
    """Drop this process's waiting records of a model folder (``DELETE ?_log``)."""
    with _buffer.flushing:
        _buffer.take(str(folder))


F = TypeVar("F", bound=Callable[..., Any])


def logs_python(proba: bool = False) -> Callable[[F], F]:
    """Decorates ``MLModel.predict`` (``proba``: ``predict_proba``): a call from Python is
    logged as :func:`python_call` says (a face's calls are not: it logs its own answer)."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def call(model: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
            if FACE.get() is not None:
                return method(model, data, *args, **kwargs)
            started = time.perf_counter()
            out = method(model, data, *args, **kwargs)
            if proba:
                from .predicting import best_classes

                python_call(model, data, best_classes(out), started, proba=out)
            else:
                python_call(model, data, out, started)
            return out

        return call  # type: ignore[return-value]

    return decorate
