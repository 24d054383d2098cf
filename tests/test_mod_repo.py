"""mlwidget/repo.py: the one write transaction (commit once, or nothing), the basis a commit
expects, and the snapshots of kept versions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlwidget import MLModel
from mlwidget.errors import Conflict, NotFound
from mlwidget.repo import KEPT_VERSIONS, ModelRepo, basis
from mlwidget.store import STATE, Store

NAME = "m"
ROWS = pd.DataFrame(
    {
        "x": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        "c": list("abcabcabcabc"),
        "y": [0, 1] * 6,
    }
)


@pytest.fixture
def store(store_dir: Path) -> Store:
    """A store holding model ``m``: options and data, no fit (committed by a transaction)."""
    st = Store(store_dir)
    with ModelRepo(st, NAME).transaction(create=True) as tx:
        tx.state["options"] = {"class": "LogisticRegression", "target_col": "y"}
        tx.put_data(ROWS)
    return st


def state_bytes(store: Store) -> bytes:
    return (store.dir(NAME) / STATE).read_bytes()


def data_files(store: Store) -> set[str]:
    return {p.name for p in store.dir(NAME).iterdir() if p.name.startswith("data-")}


def test_a_clean_exit_commits_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    before, sig_before = store.read_state(NAME)
    commits = []
    real_commit = store.commit
    monkeypatch.setattr(store, "commit", lambda *a: (commits.append(a), real_commit(*a)))
    repo = ModelRepo(store, NAME)
    with repo.transaction() as tx:
        assert tx.existed
        tx.put_data(ROWS.head(6))
        tx.state["notes"] = ["six rows"]
    after, sig_after = store.read_state(NAME)
    assert len(commits) == 1
    assert sig_after != sig_before
    assert after["version"] == before["version"] + 1
    assert after["data"] != before["data"] and after["data_rows"] == 6
    assert after["notes"] == ["six rows"]
    assert data_files(store) == {after["data"]}  # the replaced data file was collected
    assert len(repo.snapshot().data()) == 6


def test_an_exception_inside_commits_nothing_and_its_files_are_collected_later(
    store: Store,
) -> None:
    before = state_bytes(store)
    old_data = store.read_state(NAME)[0]["data"]
    repo = ModelRepo(store, NAME)
    with pytest.raises(RuntimeError, match="half way"):
        with repo.transaction() as tx:
            tx.put_data(ROWS.head(3))
            written = tx.state["data"]
            raise RuntimeError("half way")
    assert state_bytes(store) == before
    assert written != old_data and written in data_files(store)  # written, not referenced
    assert len(repo.snapshot().data()) == len(ROWS)
    with repo.transaction() as tx:  # the next commit collects it
        tx.state["notes"] = ["next"]
    assert data_files(store) == {old_data}


def test_unchanged_commits_nothing(store: Store) -> None:
    before, signature = state_bytes(store), store.signature(NAME)
    with ModelRepo(store, NAME).transaction() as tx:
        tx.state["options"] = {"class": "KMeans"}
        tx.unchanged()
    assert state_bytes(store) == before
    assert store.signature(NAME) == signature


def test_expect_refuses_a_commit_whose_options_changed_meanwhile(store: Store) -> None:
    looked = basis(store.read_state(NAME)[0])
    other = ModelRepo(Store(store.root), NAME)  # another process
    with other.transaction() as tx:
        tx.state["options"] = {**tx.state["options"], "target_col": "x"}
    before = state_bytes(store)
    with pytest.raises(Conflict, match="changed by another process"):
        with ModelRepo(store, NAME).transaction(expect=looked) as tx:
            tx.state["fitted"] = {"model": "computed from the old options"}
    assert state_bytes(store) == before


def test_expect_refuses_a_commit_whose_data_changed_meanwhile(store: Store) -> None:
    looked = basis(store.read_state(NAME)[0])
    with ModelRepo(Store(store.root), NAME).transaction() as tx:
        tx.put_data(ROWS.tail(4))
    with pytest.raises(Conflict):
        with ModelRepo(store, NAME).transaction(expect=looked):
            pass


def test_expect_allows_a_commit_when_only_other_things_changed(store: Store) -> None:
    looked = basis(store.read_state(NAME)[0])
    with ModelRepo(Store(store.root), NAME).transaction() as tx:
        tx.state["notes"] = ["a note changes no basis"]
    with ModelRepo(store, NAME).transaction(expect=looked) as tx:
        tx.state["fitted"] = {"model": "LogisticRegression"}
    assert store.read_state(NAME)[0]["fitted"] == {"model": "LogisticRegression"}


def test_a_missing_model_is_not_found_unless_created(store_dir: Path) -> None:
    store = Store(store_dir)
    repo = ModelRepo(store, "new")
    with pytest.raises(NotFound, match="'new'"):
        with repo.transaction():
            pass
    assert not store.exists("new")
    with repo.transaction(create=True) as tx:
        assert not tx.existed and tx.state == {}
        tx.state["options"] = {"class": None}
    assert store.exists("new")
    assert repo.snapshot().options == {"class": None}


def test_a_pipeline_put_in_a_commit_is_served_without_loading_it(store: Store) -> None:
    repo = ModelRepo(store, NAME)
    pipeline = {"stands in for": "a fitted pipeline"}
    with repo.transaction() as tx:
        tx.state["model"] = tx.put_model(pipeline)
    assert repo.loaded
    assert repo.snapshot().pipeline() is pipeline
    fresh = ModelRepo(Store(store.root), NAME)  # another process loads the file
    assert not fresh.loaded
    assert fresh.snapshot().pipeline() == pipeline


# ------------------------------------------------------------------------------ versions


@pytest.fixture
def fitted(store_dir: Path) -> MLModel:
    """Versions 1-5: 1 on x and c, 2-5 on x alone (c excluded), with growing C."""
    model = MLModel(
        "fitted",
        data=ROWS,
        store=store_dir,
        executor="thread",
        class_="LogisticRegression",
        target_col="y",
        cv_folds=0,
    )
    model.configure(exclude=["c"])
    for c in (0.5, 0.25, 0.125, 0.0625):
        model.configure(C=c)
        model.retrain()
    return model


def test_snapshot_of_a_kept_version_has_its_pipeline_and_schema(fitted: MLModel) -> None:
    repo = ModelRepo(Store(fitted.store.root), "fitted")
    current = repo.snapshot()
    assert current.fitted["version"] == 5
    old = repo.snapshot(1)
    assert old is not current
    assert [f["name"] for f in old.schema] == ["x", "c"]
    assert [f["name"] for f in current.schema] == ["x"]
    assert old.fitted["version"] == 1 and old.fitted["params"]["C"] == 1.0
    assert list(old.pipeline().feature_names_in_) == ["x", "c"]
    assert (
        old.pipeline().predict(ROWS[["x", "c"]]).tolist()
        == fitted.snapshot(1).pipeline().predict(ROWS[["x", "c"]]).tolist()
    )
    assert repo.snapshot(5) is current
    assert repo.snapshot("5") is current


def test_snapshot_of_a_version_not_kept_is_not_found(fitted: MLModel) -> None:
    repo = ModelRepo(Store(fitted.store.root), "fitted")
    with pytest.raises(NotFound, match="no version 9"):
        repo.snapshot(9)


def test_at_most_the_kept_number_of_version_pipelines_stay_loaded(fitted: MLModel) -> None:
    repo = ModelRepo(Store(fitted.store.root), "fitted")
    entries = {e["version"]: e for e in repo.snapshot().state["versions"]}
    assert KEPT_VERSIONS == 3
    first = repo.version_pipeline(entries[1])
    assert repo.version_pipeline(entries[1]) is first  # kept: not loaded again
    for number in (2, 3, 4):  # three others: version 1 is the oldest asked for, dropped
        repo.version_pipeline(entries[number])
    assert repo.version_pipeline(entries[1]) is not first
    fourth = repo.version_pipeline(entries[4])
    assert repo.version_pipeline(entries[4]) is fourth  # among the last three


def test_release_drops_what_is_loaded(fitted: MLModel) -> None:
    repo = ModelRepo(Store(fitted.store.root), "fitted")
    entry = repo.snapshot().state["versions"][0]
    kept = repo.version_pipeline(entry)
    repo.snapshot().pipeline()
    assert repo.loaded
    repo.release()
    assert not repo.loaded
    assert repo.version_pipeline(entry) is not kept
