"""mlwidget/snapshot.py: what a newer snapshot carries over, when the current one is re-read,
and the one retry of a read whose files were superseded."""

from __future__ import annotations

from pathlib import Path

import joblib
import pandas as pd
import pytest

from mlwidget.errors import Conflict, NotFound
from mlwidget.repo import ModelRepo
from mlwidget.snapshot import Snapshot, Snapshots, Superseded
from mlwidget.store import Store

NAME = "m"


def put(store: Store, rows: int, notes: str = "") -> dict:
    """Commit ``rows`` rows as model m's data, through another repo (another process)."""
    with ModelRepo(Store(store.root), NAME).transaction(create=True) as tx:
        tx.put_data(pd.DataFrame({"x": range(rows)}))
        tx.state["notes"] = [notes]
    return Store(store.root).read_state(NAME)[0]


@pytest.fixture
def store(store_dir: Path) -> Store:
    st = Store(store_dir)
    put(st, 3)
    return st


# ------------------------------------------------------------------------------ Snapshot


def test_a_newer_snapshot_of_the_same_model_file_carries_the_pipeline_over(
    tmp_path: Path,
) -> None:
    pipeline = {"a": "pipeline"}
    old = Snapshot(NAME, tmp_path, {"model": "model-1.joblib", "data": None}, (1,), None)
    old.adopt(pipeline)
    newer = Snapshot(NAME, tmp_path, {"model": "model-1.joblib", "notes": ["x"]}, (2,), old)
    assert newer.loaded_parts()[0] is pipeline
    assert newer.pipeline() is pipeline  # no file is read: there is none
    assert not (tmp_path / "model-1.joblib").exists()


def test_a_snapshot_of_another_model_file_loads_its_own(tmp_path: Path) -> None:
    joblib.dump({"the": "second"}, tmp_path / "model-2.joblib")
    old = Snapshot(NAME, tmp_path, {"model": "model-1.joblib"}, (1,), None)
    old.adopt({"the": "first"})
    newer = Snapshot(NAME, tmp_path, {"model": "model-2.joblib"}, (2,), old)
    assert newer.loaded_pipeline() is None  # not carried over
    assert newer.pipeline() == {"the": "second"}


def test_the_data_is_carried_over_while_the_data_file_is_the_same(store: Store) -> None:
    state, sig = store.read_state(NAME)
    old = Snapshot(NAME, store.dir(NAME), state, sig, None)
    data = old.data()
    same = Snapshot(NAME, store.dir(NAME), {**state, "notes": ["y"]}, None, old)
    assert same.data() is data
    other_state = put(store, 5)
    other = Snapshot(NAME, store.dir(NAME), other_state, None, same)
    assert other.data() is not data and len(other.data()) == 5


def test_a_file_gone_from_under_a_snapshot_is_superseded(store: Store) -> None:
    state, sig = store.read_state(NAME)
    old = Snapshot(NAME, store.dir(NAME), state, sig, None)
    put(store, 4)  # collects the data file the old state names
    with pytest.raises(Superseded):
        old.data()


def test_a_detached_snapshot_serves_the_pipeline_it_was_given() -> None:
    pipeline = object()
    snap = Snapshot.detached(NAME, {"model": "model-9.joblib", "schema": [{"name": "x"}]}, pipeline)
    assert snap.pipeline() is pipeline
    assert snap.schema == [{"name": "x"}]
    assert snap.serving(fast_path=False) == (True, "pipeline", None)


# ------------------------------------------------------------------------------ Snapshots


def test_current_is_reread_only_when_the_signature_changes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = []
    real = store.read_state
    monkeypatch.setattr(store, "read_state", lambda name: (reads.append(name), real(name))[1])
    snaps = Snapshots(store, NAME)
    first = snaps.current()
    assert snaps.current() is first and snaps.current() is first
    assert len(reads) == 1
    put(store, 7, notes="by another process")
    second = snaps.current()
    assert len(reads) == 2
    assert second is not first and second.state["notes"] == ["by another process"]
    assert len(second.data()) == 7
    assert snaps.current() is second and len(reads) == 2


def test_current_of_a_removed_model_is_not_found(store: Store) -> None:
    snaps = Snapshots(store, NAME)
    snaps.current()
    Store(store.root).remove(NAME)
    with pytest.raises(NotFound, match="no longer exists"):
        snaps.current()


def test_read_retries_on_the_newer_snapshot_when_a_file_was_superseded(store: Store) -> None:
    snaps = Snapshots(store, NAME)
    snaps.current()  # cached: names the 3-row data file
    seen = []

    def operation(snap: Snapshot) -> int:
        seen.append(snap)
        if len(seen) == 1:
            put(store, 8)  # another process commits between our look and our read
        return len(snap.data())

    assert snaps.read(operation) == 8
    assert len(seen) == 2 and seen[0] is not seen[1]
    assert seen[1].state["data_rows"] == 8


def test_read_gives_up_with_a_conflict_when_every_try_is_superseded(store: Store) -> None:
    tries = []

    def operation(snap: Snapshot) -> None:
        tries.append(snap)
        raise Superseded("model-x.joblib")

    with pytest.raises(Conflict, match="keeps changing"):
        Snapshots(store, NAME).read(operation)
    assert len(tries) > 1


def test_release_forgets_what_was_loaded(store: Store) -> None:
    snaps = Snapshots(store, NAME)
    snap = snaps.current()
    snap.adopt({"a": "pipeline"})
    assert snaps.loaded
    snaps.release()
    assert not snaps.loaded and snaps.cached is None
    assert snaps.current() is not snap
