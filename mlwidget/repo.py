"""A model's repository: its committed snapshots, read consistently, and the one write
transaction every change goes through.

``ModelRepo(store, name)`` is what ``MLModel``, the jobs (tasks.py), rollback and export read
and write a model through:

- ``snapshot()`` is the latest commit (a stat when nothing changed), ``snapshot(version)`` a kept
  version's, detached, with its own pipeline; ``read(operation)`` runs ``operation`` on one
  snapshot and again on a newer one if its files were replaced meanwhile.
- ``with repo.transaction() as tx:`` takes the model's lock, reads the latest state into
  ``tx.state``, lets the caller write new files (``tx.put_data``, ``tx.put_model``,
  ``tx.adopt_model``) and change the state, and on a clean exit commits it once (one atomic
  replace of ``state.json``). An exception inside, or ``tx.unchanged()``, commits nothing: the
  files written for it are collected at the next commit. ``expect=`` refuses (409) a commit
  whose basis (data and options) changed since the caller looked.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import pandas as pd

from . import access, training, versions
from .errors import Conflict, NotFound
from .snapshot import Snapshot, Snapshots
from .store import LOCK_TIMEOUT, Store, dump_model

T = TypeVar("T")
KEPT_VERSIONS = 3  # older versions' pipelines kept loaded (V2's versions/{n}/, explain, replay)
Basis = tuple[Any, str]


def basis(state: Mapping[str, Any]) -> Basis:
    """What a fit is computed from (the data file and the options): a commit that expects one
    basis is refused if the model's is another by then."""
    return state.get("data"), json.dumps(state.get("options"), sort_keys=True, default=str)


class Transaction:
    """One change to a model: ``state`` to edit, files to add, committed once (see module)."""

    def __init__(self, repo: ModelRepo, state: dict[str, Any] | None) -> None:
        self.repo = repo
        self.state: dict[str, Any] = state if state is not None else {}
        self.existed = state is not None
        self.changed = True
        self.pipeline: Any = None  # the fitted pipeline the commit names (kept loaded)

    def put_data(self, frame: pd.DataFrame, fingerprint: str | None = None) -> None:
        """Write ``frame`` as the model's training data (its rows, columns and fingerprint:
        ``fingerprint`` when the caller has computed ``training.data_hash(frame)`` already,
        as a fit of it has)."""
        frame = frame.reset_index(drop=True)
        store, name = self.repo.store, self.repo.name
        self.state["data"] = store.new_file(name, "data", ".pkl", frame.to_pickle)
        self.state["data_hash"] = fingerprint or training.data_hash(frame)
        self.state["data_rows"] = len(frame)
        self.state["data_columns"] = [str(c) for c in frame.columns]

    def put_model(self, pipeline: Any) -> str:
        """Write ``pipeline`` as a model file; returns its name (for ``state["model"]``)."""
        self.pipeline = pipeline
        return self.repo.store.new_file(
            self.repo.name, "model", ".joblib", lambda tmp: dump_model(pipeline, tmp)
        )

    def adopt_model(self, staged: str) -> str:
        """Move in a model file a worker process wrote beside the store; returns its name."""
        return self.repo.store.adopt_file(self.repo.name, "model", ".joblib", staged)

    def unchanged(self) -> None:
        """Commit nothing (the change turned out to be a no-op)."""
        self.changed = False


class ModelRepo:
    """One named model's files in a store: snapshots and the write transaction."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name
        self.snapshots = Snapshots(store, name)
        self._kept: OrderedDict[str, Any] = OrderedDict()  # model file -> loaded pipeline
        self._kept_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ModelRepo {self.name!r} in {self.store.root}>"

    # ------------------------------------------------------------------ reading

    def snapshot(self, version: Any = None) -> Snapshot:
        """The latest commit; with ``version``, that kept version's snapshot (detached: its
        schema, fitted record and pipeline; the last few asked for stay loaded)."""
        current = self.snapshots.current()
        if version is None:
            return current
        entry = versions.find(current.state, version, self.name)
        if entry["version"] == versions.serving(current.state):
            return current
        kept = {**current.state, "model": entry["model"], "fitted": entry["fitted"]}
        kept["schema"] = entry["schema"]
        return Snapshot.detached(self.name, kept, self.version_pipeline(entry))

    def read(self, operation: Callable[[Snapshot], T]) -> T:
        """``operation`` on one snapshot, retried on a newer one if its files were replaced."""
        return self.snapshots.read(operation)

    def version_bytes(self, version: Any) -> bytes:
        """The model file of a kept version."""

        def content(snap: Snapshot) -> bytes:
            entry = versions.find(snap.state, version, self.name)
            try:
                return (snap.folder / str(entry["model"])).read_bytes()
            except FileNotFoundError:
                raise NotFound(
                    f"Version {entry['version']} of {self.name!r} was dropped meanwhile."
                ) from None

        return self.read(content)

    def version_pipeline(self, entry: Mapping[str, Any]) -> Any:
        """The pipeline of the kept version ``entry`` (one of ``versions.entries``)."""
        import joblib

        key = str(entry["model"])
        with self._kept_lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        pipeline = joblib.load(io.BytesIO(self.version_bytes(entry["version"])))
        with self._kept_lock:
            self._kept[key] = pipeline
            while len(self._kept) > KEPT_VERSIONS:
                self._kept.popitem(last=False)
        return pipeline

    @property
    def loaded(self) -> bool:
        """Whether this process holds the serving pipeline in memory."""
        return self.snapshots.loaded

    def release(self) -> None:
        """Let go of what is loaded; a reader under way keeps the snapshot it has."""
        self.snapshots.release()
        with self._kept_lock:
            self._kept.clear()

    # ------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def transaction(
        self,
        timeout: float = LOCK_TIMEOUT,
        expect: Basis | None = None,
        create: bool = False,
    ) -> Iterator[Transaction]:
        """Lock the model, yield a :class:`Transaction` on its latest state, commit once.

        ``expect``: the basis (see :func:`basis`) the change was computed from; another by
        now is a Conflict and nothing is written. ``create``: the model may not exist yet
        (``tx.existed`` says whether it did); else a missing model is NotFound."""
        with self.store.lock(self.name, timeout):
            state, _ = self.store.read_state(self.name)
            if state is None and not create:
                raise NotFound(f"Model {self.name!r} no longer exists in the store.")
            if expect is not None and (state is None or basis(state) != expect):
                raise Conflict(
                    f"Model {self.name!r} was changed by another process meanwhile (its "
                    "options or data), so this change was not stored. Try again."
                )
            tx = Transaction(self, state)
            yield tx
            if not tx.changed:
                return
            tx.state["changed_by"] = access.acting()  # the audit: who made the last change
            self.store.commit(self.name, tx.state)
            self.snapshots.invalidate()
            if tx.pipeline is not None:  # just fitted here: the next read need not load it
                snap = self.snapshots.current()
                if snap.state.get("model") == tx.state.get("model"):
                    snap.adopt(tx.pipeline)

    def remove(self) -> None:
        """Remove the model from the store entirely."""
        self.store.remove(self.name)
        self.release()
