"""Snapshots: one committed state of a model and what it names, read once per store signature.

Every operation of ``MLModel`` works on one ``Snapshot``, so its parts (options, schema, the
fitted pipeline, its compiled fast predictor, the training data) all belong to the same commit,
even while another process commits. A snapshot loads its files at most once, on first use, and
a newer snapshot that names the same files takes them over instead of loading them again.

If a file a snapshot names disappears (another process committed and collected it while we
were about to read it), the read raises ``Superseded`` and ``Snapshots.read`` retries the whole
operation on the newer snapshot: the one retry loop of the read side.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import joblib
import pandas as pd

from .errors import Conflict, NotFound
from .fastpath import FastPredictor, compile_model
from .store import Store
from .versions import library_warnings

log = logging.getLogger("mlwidget")

T = TypeVar("T")
_UNSET: Any = object()
RETRIES = 5
# ``predict_path`` of a fitted model this process has not prepared yet: its pipeline is not in
# memory, or it is (just fitted here) but not compiled; the first prediction does both.
NOT_LOADED = "not loaded"
NOT_COMPILED = "not compiled"


class Superseded(Exception):
    """A file this snapshot names was replaced by a newer commit: read the newer one."""


class Snapshot:
    """One committed state (``state.json`` as read) of model ``name``, and its files."""

    def __init__(
        self,
        name: str,
        folder: Path,
        state: Mapping[str, Any],
        signature: Any,
        previous: Snapshot | None,
    ) -> None:
        self.name = name
        self.folder = folder
        self.state = state
        self.signature = signature
        self._lock = threading.RLock()
        same_model = previous is not None and previous.state.get("model") == state.get("model")
        same_data = previous is not None and previous.state.get("data") == state.get("data")
        pipeline, fast, data = previous.loaded_parts() if previous is not None else (_UNSET,) * 3
        self._pipeline = pipeline if same_model else _UNSET
        self._fast = fast if same_model else _UNSET
        # why the fast path does not (fully) answer, once compiled; None when it does
        self.fast_reason: str | None = previous.fast_reason if previous and same_model else None
        self._data = data if same_data else _UNSET

    def loaded_parts(self) -> tuple[Any, Any, Any]:
        """What this snapshot loaded (its pipeline, compiled predictor and data, or a marker
        for "not yet"): a newer snapshot of the same files carries them over."""
        return self._pipeline, self._fast, self._data

    def __repr__(self) -> str:
        return f"<Snapshot {self.name!r} version {self.state.get('version')}>"

    @classmethod
    def detached(cls, name: str, state: Mapping[str, Any], pipeline: Any) -> Snapshot:
        """A snapshot of ``state`` whose fitted ``pipeline`` is given, not read from a store:
        for a job's worker, or an older version kept in the store."""
        snap = cls(name, Path("."), state, None, None)
        snap.adopt(pipeline)
        return snap

    # ---------------------------------------------------------------- what the state says

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.state.get("options") or {})

    @property
    def fitted(self) -> dict[str, Any]:
        return dict(self.state.get("fitted") or {})

    @property
    def schema(self) -> list[dict[str, Any]]:
        return list(self.state.get("schema") or [])

    @property
    def model_file(self) -> Path | None:
        filename = self.state.get("model")
        return self.folder / filename if filename else None

    # ---------------------------------------------------------------- what it names

    def pipeline(self) -> Any:
        """The fitted pipeline this state names (loaded once), or None if it names none."""
        if self._pipeline is _UNSET:
            with self._lock:
                if self._pipeline is _UNSET:
                    path = self.model_file
                    self._pipeline = None if path is None else _load(joblib.load, path)
                    for warning in library_warnings(self.fitted) if path else ():
                        log.warning("mlwidget: model %r: %s", self.name, warning)
        return self._pipeline

    def loaded_pipeline(self) -> Any:
        """The pipeline if it is loaded already (never loads), else None."""
        return None if self._pipeline is _UNSET else self._pipeline

    def fast(self) -> FastPredictor | None:
        """The compiled few-row predictor of the pipeline (compiled once), or None."""
        if self._fast is _UNSET:
            pipeline = self.pipeline()
            with self._lock:
                if self._fast is _UNSET:
                    kind = self.fitted.get("kind")
                    reasons: list[str] = []
                    fast = None
                    if pipeline is not None:
                        fast = compile_model(pipeline, self.schema, kind, reasons)
                    if fast is not None and library_warnings(self.fitted):
                        # fit under other library versions: serve the fast path only if it
                        # agrees with the pipeline as loaded here
                        if not _agrees(fast, pipeline, self.schema):
                            fast = None
                            reasons.insert(0, "fit with other library versions, and the fast "
                                           "path disagreed with the pipeline: the pipeline "
                                           "answers")  # fmt: skip
                    self.fast_reason = reasons[0] if reasons else None
                    self._fast = fast
        return self._fast

    def loaded_fast(self) -> FastPredictor | None:
        """The compiled predictor if it exists already (never loads or compiles), else None."""
        return None if self._fast is _UNSET else self._fast

    def serving(self, fast_path: bool = True) -> tuple[bool, str | None, str | None]:
        """``(loaded, predict_path, predict_path_reason)`` as this process has them now, for
        ``info()``: never loads or compiles. ``predict_path`` is the compiled path's label,
        ``"pipeline"``, None when nothing is fitted, or ``NOT_LOADED`` / ``NOT_COMPILED``
        until a prediction prepares it (``fast_path=False``: the pipeline always answers)."""
        loaded = self.loaded_pipeline() is not None
        if not self.state.get("model"):
            return loaded, None, None
        if self._fast is not _UNSET and fast_path:
            path = self._fast.label if self._fast is not None else "pipeline" if loaded else None
            return loaded, path, self.fast_reason
        if loaded:
            return loaded, "pipeline" if not fast_path else NOT_COMPILED, None
        return loaded, NOT_LOADED, None

    def data(self) -> pd.DataFrame | None:
        """The training data this state names (loaded once; do not modify), or None."""
        if self._data is _UNSET:
            with self._lock:
                if self._data is _UNSET:
                    filename = self.state.get("data")
                    self._data = (
                        None if not filename else _load(pd.read_pickle, self.folder / filename)
                    )
        return self._data

    def model_bytes(self) -> bytes | None:
        path = self.model_file
        return None if path is None else _load(Path.read_bytes, path)

    def adopt(self, pipeline: Any) -> None:
        """Take the pipeline this process just fitted and committed, instead of loading it."""
        with self._lock:
            if self._pipeline is _UNSET:
                self._pipeline = pipeline


def _agrees(fast: FastPredictor, pipeline: Any, schema: list[dict[str, Any]]) -> bool:
    """The fast path and the pipeline answer alike on probe rows from the schema: the defaults,
    and each known category of each categorical feature."""
    from .schema import cast

    base = {f["name"]: f.get("default") for f in schema}
    rows = [base]
    for f in schema:
        for value in (f.get("categories") or [])[:20]:
            rows.append({**base, f["name"]: value})
    try:
        frame = cast(pd.DataFrame(rows), schema)
        quick = fast.predict_frame(frame)
        return quick is not None and list(quick) == list(pipeline.predict(frame))
    except Exception:
        return False


def _load(reader: Callable[[Any], T], path: Path) -> T:
    try:
        return reader(path)
    except FileNotFoundError:
        raise Superseded(path.name) from None


class Snapshots:
    """The current snapshot of one model, re-read only when the store's signature changes."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name
        self._mutex = threading.Lock()
        self._current: Snapshot | None = None

    @property
    def cached(self) -> Snapshot | None:
        """The last snapshot read, without looking at the store."""
        return self._current

    @property
    def loaded(self) -> bool:
        """Whether the last snapshot read holds its fitted pipeline in memory (no store look)."""
        snap = self._current
        return snap is not None and snap.loaded_pipeline() is not None

    def release(self) -> None:
        """Forget the last snapshot and all it loaded (pipeline, fast path, data): the next
        read starts from the store again. An operation under way keeps the snapshot it has."""
        with self._mutex:
            self._current = None

    def current(self) -> Snapshot:
        """The snapshot of the latest commit (a stat of ``state.json`` when nothing changed)."""
        signature = self.store.signature(self.name)
        snap = self._current
        if snap is not None and signature is not None and snap.signature == signature:
            return snap
        with self._mutex:
            state, signature = self.store.read_state(self.name)
            if state is None:
                raise NotFound(
                    f"Model {self.name!r} no longer exists in the store. Create it again with "
                    "MLModel(name, data=..., class_=...)."
                )
            snap = self._current
            if snap is None or snap.signature != signature:
                snap = Snapshot(self.name, self.store.dir(self.name), state, signature, snap)
                self._current = snap
            return snap

    def read(self, operation: Callable[[Snapshot], T]) -> T:
        """``operation(snapshot)`` on the latest snapshot, again on a newer one if a file it
        needed was superseded meanwhile."""
        for _ in range(RETRIES):
            snap = self.current()
            try:
                return operation(snap)
            except Superseded:
                with self._mutex:
                    if self._current is snap:
                        self._current = Snapshot(
                            self.name, snap.folder, snap.state, None, None
                        )  # same state, nothing carried over: the next current() re-reads
        raise Conflict(f"Model {self.name!r} keeps changing; try again.")

    def invalidate(self) -> None:
        """Forget the cached signature (after this process committed): the next read looks."""
        with self._mutex:
            snap = self._current
            if snap is not None:
                fresh = Snapshot(self.name, snap.folder, snap.state, None, snap)
                self._current = fresh
