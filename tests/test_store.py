"""The store shared by processes: cross-process visibility, concurrent appends, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import filelock
import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER

from mlwidget import BadRequest, MLModel
from mlwidget.store import STATE, Store, default_root, safe_name

# A second, long-lived Python process: reads one JSON command per line, answers one JSON line.
WORKER = textwrap.dedent(
    """
    import json, sys
    from mlwidget import MLModel
    model = MLModel.open(sys.argv[1], store=sys.argv[2])
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "info":
            info = model.info()
            out = {"model": info["model"], "fitted": (info["fitted"] or {}).get("model"),
                   "params": info["params"], "rows": info["rows"],
                   "predict": model.predict(cmd["row"])}
        elif cmd["op"] == "configure":
            out = model.configure(**cmd["changes"])["params"]
        elif cmd["op"] == "retrain":
            out = model.retrain()
        print(json.dumps(out, default=str), flush=True)
    """
)


class Worker:
    def __init__(self, name: str, store: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, name, str(store)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "worker process died"
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def titanic(titanic_csv, store_dir) -> MLModel:
    return MLModel("titanic", data=titanic_csv, store=store_dir, **GUIDE_OPTIONS)


def test_default_root_honours_env(store_dir):
    assert default_root() == store_dir
    assert Store().root == store_dir
    assert safe_name("mlhandler/tutorial") == "mlhandler-tutorial"


def test_second_process_sees_changes_without_restart(titanic, store_dir):
    worker = Worker("titanic", store_dir)
    try:
        first = worker.ask(op="info", row=GUIDE_PASSENGER)
        assert first["fitted"] == "LogisticRegression" and first["predict"] == [0]
        assert first["rows"] == 891
        # configure in this process -> seen there
        titanic.configure(class_="RandomForestClassifier", n_estimators=7)
        seen = worker.ask(op="info", row=GUIDE_PASSENGER)
        assert seen["model"] == "RandomForestClassifier" and seen["params"]["n_estimators"] == 7
        assert seen["fitted"] == "LogisticRegression"  # staged, not trained
        # retrain here -> the other process predicts with the new model
        titanic.retrain()
        assert worker.ask(op="info", row=GUIDE_PASSENGER)["fitted"] == "RandomForestClassifier"
        # append here -> row count there
        titanic.append(titanic.data().head(3))
        assert worker.ask(op="info", row=GUIDE_PASSENGER)["rows"] == 894
        # and the other way round: a change there is seen here
        worker.ask(op="configure", changes={"n_estimators": "3"})
        assert titanic.info()["params"]["n_estimators"] == 3
        worker.ask(op="retrain")
        assert len(titanic.estimator.estimators_) == 3
    finally:
        worker.close()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != ".lock"}


def test_bad_append_changes_nothing(titanic, store_dir):
    folder = store_dir / "titanic"
    before = _files(folder)
    row = titanic.data().head(1)
    with pytest.raises(BadRequest, match="missing 'Fare'"):
        titanic.append(row.drop(columns=["Fare"]))
    with pytest.raises(BadRequest, match="unexpected 'Colour'"):
        titanic.append(row.assign(Colour="red"))
    with pytest.raises(BadRequest, match="Expected numbers in column 'Age'"):
        titanic.append(row.assign(Age="very old"))
    assert _files(folder) == before  # byte for byte


APPENDER = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from mlwidget import MLModel
    model = MLModel.open(sys.argv[1], store=sys.argv[2])
    row = pd.read_csv(sys.argv[3]).head(1)
    for i in range(int(sys.argv[4])):
        model.append(row)
    """
)


def test_concurrent_appends_from_two_processes_all_land(titanic, store_dir, titanic_csv):
    n = 15
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, "titanic", str(store_dir), str(titanic_csv), str(n)]
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    assert len(titanic.data()) == 891 + 2 * n
    assert titanic.info()["rows"] == 891 + 2 * n


# The writer is killed (SIGKILL) while the new model file is half written: the hook makes the
# real store write half of the file, tell the parent, and wait to be killed.
KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    import mlwidget.store as store
    real = store.atomic_write
    def slow(path, writer):
        def half(tmp):
            writer(tmp)
            with open(tmp, "r+b") as f:
                f.truncate(os.path.getsize(tmp) // 2)
            print("writing", flush=True)
            time.sleep(60)
        real(path, half if path.name.startswith(sys.argv[3]) else writer)
    store.atomic_write = slow
    from mlwidget import MLModel
    # the thread executor: the model file is written in this process (a worker process
    # writes it in the model's staging folder, see test_a_staged_file_*)
    model = MLModel.open(sys.argv[1], store=sys.argv[2], executor="thread")
    model.configure(class_="RandomForestClassifier", n_estimators=5)
    if sys.argv[3] == "model-":
        model.retrain()
    else:
        model.append(model.data().head(2))
    """
)


@pytest.mark.parametrize("target", ["model-", "data-"])
def test_writer_killed_mid_save_leaves_previous_state(titanic, store_dir, target):
    folder = store_dir / "titanic"
    before = json.loads((folder / STATE).read_text())
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, "titanic", str(store_dir), target],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert any(p.name.endswith(".tmp") for p in folder.iterdir())  # it died mid-write
    reopened = MLModel.open("titanic", store=store_dir)
    after = json.loads((folder / STATE).read_text())
    assert after["model"] == before["model"] and after["data"] == before["data"]
    assert reopened.predict(GUIDE_PASSENGER) == [0]
    assert reopened.info()["fitted"]["model"] == "LogisticRegression"
    assert len(reopened.data()) == 891
    # The lock died with the process: nobody holds it, and the next writer takes it.
    probe = filelock.FileLock(str(folder / ".lock"))
    probe.acquire(timeout=0)  # (raises Timeout if the dead writer's lock were still held)
    probe.release()
    reopened.append(reopened.data().head(1))
    assert not any(p.name.endswith(".tmp") for p in folder.iterdir())  # debris collected


def test_reader_in_same_process_sees_new_state(titanic, store_dir):
    other = MLModel.open("titanic", store=store_dir)
    titanic.configure(C="0.25")
    assert other.info()["params"]["C"] == 0.25
    titanic.delete_model()
    assert other.info()["fitted"] is None
    frame = pd.DataFrame([GUIDE_PASSENGER])
    with pytest.raises(Exception, match="no fitted estimator"):
        other.predict(frame)


def test_a_staged_file_left_by_a_dead_writer_is_collected_at_the_next_commit(titanic, store_dir):
    """A worker process writes a retrain's model file in the model's staging folder; one
    killed mid-write leaves half a file there, and a server killed before its commit a whole
    one. The next commit removes the half file of a writer that is gone and files a day old,
    and keeps what a live writer is still writing or a job may still commit."""
    staging = store_dir / "titanic" / ".jobs"
    staging.mkdir(exist_ok=True)  # the model's first fit ran in a worker process too
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    half = staging / f".model-18f0-{dead.pid}.joblib.x1y2.tmp"
    writing = staging / f".model-18f1-{os.getpid()}.joblib.a1b2.tmp"
    old = staging / "model-18f2-1.joblib"
    fresh = staging / "model-18f3-1.joblib"
    for path in (half, writing, old, fresh):
        path.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * 86_400,) * 2)
    titanic.configure(C="0.5")  # a commit
    assert sorted(p.name for p in staging.iterdir()) == sorted([writing.name, fresh.name])
    assert titanic.predict(GUIDE_PASSENGER) == [0]


# ----------------------------------------------------------------- creating, and only creating


def stored_files(store_dir: Path) -> dict[str, bytes]:
    """Every file of the store (lock files aside) with its bytes."""
    return {
        str(p.relative_to(store_dir)): p.read_bytes()
        for p in sorted(store_dir.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def test_create_only_refuses_an_existing_model_and_changes_nothing(titanic, store_dir):
    from mlwidget import Conflict

    before = stored_files(store_dir)
    with pytest.raises(Conflict) as err:
        MLModel("titanic", data=titanic.data().head(5), store=store_dir, class_="SVC", create=True)
    assert err.value.status == 409
    assert "A model named 'titanic' exists already" in str(err.value)
    assert "nothing was created or changed" in str(err.value)
    assert stored_files(store_dir) == before
    assert titanic.info()["model"] == "LogisticRegression" and len(titanic.data()) == 891
    with pytest.raises(BadRequest, match="create=True .* or overwrite=True"):
        MLModel("other", store=store_dir, create=True, overwrite=True)
    fresh = MLModel("other", store=store_dir, class_="SVC", create=True)
    assert fresh.info()["model"] == "SVC" and Store(store_dir).names() == ["other", "titanic"]


@pytest.mark.parametrize("name", ["Titanic", "titanic.", "TITANIC", "TiTaNiC."])
def test_names_differing_only_by_case_or_a_trailing_dot_are_refused(titanic, store_dir, name):
    """``Titanic`` beside ``titanic`` is two models to the store but one to a person (and one
    folder on a case-insensitive file system): creating it is a 409 naming ``titanic``, with or
    without create=True or overwrite=True, and nothing is written, not even a folder."""
    from mlwidget import Conflict

    before = stored_files(store_dir)
    for flags in ({}, {"create": True}, {"overwrite": True}):
        with pytest.raises(Conflict) as err:
            MLModel(name, data=titanic.data().head(20), store=store_dir, **GUIDE_OPTIONS, **flags)
        message = str(err.value)
        assert "A model named 'titanic' exists already" in message, message
        assert f"{name!r} differs from it only by case or a trailing dot" in message
    assert sorted(p.name for p in store_dir.iterdir()) == ["titanic"]
    assert stored_files(store_dir) == before
    assert MLModel("titanic", store=store_dir).info()["rows"] == 891  # the name itself opens
    assert MLModel("titanic-2", store=store_dir).name == "titanic-2"  # more than case: a new one


def test_the_dashboards_new_model_refuses_existing_names_through_the_core(titanic, store_dir):
    """The dashboard's New model checked names against the list it had read, then opened
    whatever model had that name and retrained it on the file (replacing its rows; a failed
    training then deleted it). It now creates with create=True: the core's 409, nothing
    changed."""
    from mlwidget import Conflict
    from mlwidget.widgets.picker import NewModelForm, model_name_for

    before = stored_files(store_dir)
    form = NewModelForm(store=store_dir)
    form.table = pd.DataFrame({"x": range(20), "y": [0, 1] * 10})
    for name in ("titanic", "Titanic", "titanic."):
        form.name.value = name
        assert form.create() is False
        assert form.status.kind == "error" and "'titanic' exists already" in form.status.text
    # a model of that name made after the check (by another kernel, the server): refused too
    with pytest.raises(Conflict, match="'titanic' exists already"):
        form._create("titanic", {"class": "LogisticRegression", "target_col": "y"}, form.table)
    assert stored_files(store_dir) == before
    assert model_name_for("Titanic.csv", ["titanic"]) == "Titanic-2"
