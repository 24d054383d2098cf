"""The server is SIGKILLed mid-write; restarted on the same store, it finds the last complete
model and data, and the store's lock is free.

The model is fitted on a small table (which answers the probe row with 1) while its stored
data is a large table (a retrain on it takes seconds and answers 0), as in
test_rest_nonblocking.py. The server (``python -m jupyter_server``) is killed

- during a retrain (while the estimator fits, holding the model's lock), and
- during an append (while the new data file is being written, before the state commits).

After the restart predictions come from the previous fitted model, ``?_model`` shows it, the
row count is the previous one, a write succeeds promptly (the killed process's lock went with
it) and that write also clears the killed writer's debris.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest
import requests
from conftest import ROOT
from rest_helpers import free_port

from mlwidget import MLModel

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

NAME = "big"
ROWS = 200_000
PROBE = {"x1": "2", "x2": "0", "x3": "0", "c": "a", "note": "x"}


def tables(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A large table where y = x1 < 0 and a small one where y = x1 > 0 (a text column makes
    the data file slow enough to write that a kill can land in the middle)."""
    rng = np.random.default_rng(0)
    big = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "x3": rng.normal(size=n),
            "c": rng.choice(list("abcd"), size=n),
            "note": [f"{i:08x}" * 4 for i in rng.integers(0, 2**31, size=n)],
        }
    )
    big["y"] = (big["x1"] < 0).astype(int)
    small = big.head(300).copy()
    small["y"] = (small["x1"] > 0).astype(int)
    return small, big


@pytest.fixture
def store(tmp_path: Path) -> Path:
    small, big = tables(ROWS)
    path = tmp_path / "store"
    model = MLModel(
        NAME, data=small, store=path, class_="RandomForestClassifier", n_estimators=10,
        random_state=0, target_col="y", exclude=["note"],
    )  # fmt: skip
    model.append(big)
    return path


class Server:
    """``python -m jupyter_server`` on a free port, serving ``store``; killable."""

    def __init__(self, tmp: Path, store: Path) -> None:
        self.tmp, self.store = tmp, store
        self.proc: subprocess.Popen | None = None
        self.url = self.token = ""
        self.log = None

    def start(self) -> Server:
        port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{port}"
        root = self.tmp / "root"
        root.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "MLWIDGET_STORE": str(self.store),
            "JUPYTER_RUNTIME_DIR": str(self.tmp / "runtime"),
            "JUPYTER_CONFIG_DIR": str(self.tmp / "config"),
            "JUPYTER_DATA_DIR": str(self.tmp / "data"),
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT / "server_extension"), str(ROOT), os.environ.get("PYTHONPATH", "")]
            ),
        }
        cmd = [
            sys.executable, "-m", "jupyter_server", "--allow-root", "--no-browser",
            "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
            '--ServerApp.jpserver_extensions={"mlwidget_server": True}',
        ]  # fmt: skip
        self.log = open(self.tmp / "server.log", "ab")  # noqa: SIM115 -- closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        request = urllib.request.Request(f"{self.url}/mlhandler/", headers=self.headers)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError((self.tmp / "server.log").read_text(errors="replace"))
            try:
                with urllib.request.urlopen(request, timeout=5) as reply:
                    json.load(reply)
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def call(
        self, method: str, timeout: float = 60, content_type: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = {**self.headers, **({"Content-Type": content_type} if content_type else {})}
        return requests.request(
            method, f"{self.url}/mlhandler/{NAME}", headers=headers, timeout=timeout, **kwargs
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no cleanup of any kind
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            self.log.close()


@pytest.fixture
def server(tmp_path: Path, store: Path) -> Iterator[Server]:
    servers: list[Server] = []

    def start() -> Server:
        servers.append(Server(tmp_path, store).start())
        return servers[-1]

    yield start  # type: ignore[misc]
    for s in servers:
        s.stop()


def lock_held(path: Path) -> bool:
    """Whether some process holds the flock on ``path`` (Linux: /proc/locks), without
    taking it; elsewhere, by trying it."""
    try:
        locks = Path("/proc/locks").read_text()
    except OSError:
        import filelock

        lock = filelock.FileLock(str(path), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            return True
        lock.release()
        return False
    inode = f":{os.stat(path).st_ino}"
    # "1: FLOCK  ADVISORY  WRITE <pid> <major>:<minor>:<inode> 0 EOF" (waiters add "->")
    return any(
        token.endswith(inode) and token.count(":") == 2
        for line in locks.splitlines()
        if "->" not in line
        for token in line.split()
    )


def in_background(call: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(call())
        except Exception as exc:  # requests' errors when the server dies under the request
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def snapshot(store: Path) -> dict[str, Any]:
    info = MLModel.open(NAME, store=store).info()
    return {
        "fitted": info["fitted"],
        "rows": info["rows"],
        "commit": info["commit"],
        "version": info["version"],
    }


def assert_recovered(server: Server, store: Path, before: dict[str, Any]) -> None:
    """The last complete model and data serve, and the lock is free."""
    assert server.call("GET", params=PROBE).json() == [1]  # the previous fitted model
    info = server.call("GET", params={"_model": ""}).json()
    assert info["fitted"] == before["fitted"]
    assert info["rows"] == before["rows"]
    assert info["commit"] == before["commit"]
    assert info["version"] == before["version"]
    assert len(MLModel.open(NAME, store=store).data()) == before["rows"]
    # a write succeeds promptly: nobody holds the lock any more
    assert not lock_held(store / NAME / ".lock")
    rows = pd.DataFrame([{**PROBE, "x1": 1.5, "y": 0}]).to_json(orient="records")
    reply = server.call(
        "POST", params={"_action": "append"}, data=rows,
        content_type="application/json", timeout=60,
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"rows": before["rows"] + 1, "appended": 1}
    # and that commit cleared the killed writer's debris
    state = json.loads((store / NAME / "state.json").read_text())
    files = {p.name for p in (store / NAME).iterdir() if p.name != ".jobs"}
    assert files == {"state.json", ".lock", state["data"], state["model"]}, files
    # .jobs/: the model files worker processes write before their commit; the killed
    # server's worker's is gone with it
    assert not [p for p in (store / NAME / ".jobs").iterdir() if p.name.startswith("model-")]


def test_kill_during_retrain(server, store):
    before = snapshot(store)
    s = server()
    assert s.call("GET", params=PROBE).json() == [1]
    thread, result = in_background(
        lambda: s.call("POST", params={"_action": "retrain"}, timeout=120)
    )
    # wait until the retrain's job fits (in a worker process of the server)
    deadline = time.monotonic() + 120
    while True:
        jobs = s.call("GET", params={"_jobs": ""}).json()
        if jobs and jobs[0]["stage"] == "fit":
            break
        assert time.monotonic() < deadline, f"the retrain never started: {jobs}"
        time.sleep(0.05)
    workers = psutil.Process(s.proc.pid).children(recursive=True)
    assert workers, "no worker process runs the job"
    assert thread.is_alive(), f"the retrain finished before the kill: {result}"
    s.kill()
    thread.join(timeout=30)
    # the job's worker does not outlive its server (it would burn CPU for nobody)
    gone, alive = psutil.wait_procs(workers, timeout=60)  # (a bound, not a measurement)
    assert not alive, alive
    assert result and isinstance(result[0], requests.RequestException), result
    assert snapshot(store) == before  # the state on disk is the last complete one

    s = server()
    assert_recovered(s, store, before)
    # the store is fully usable: a retrain now completes and the new model takes over
    reply = s.call("POST", params={"_action": "retrain"}, timeout=120)
    assert reply.status_code == 200, reply.text
    assert reply.json()["rows"] > 100_000
    assert s.call("GET", params=PROBE).json() == [0]


def test_kill_during_append(server, store):
    s = server()
    folder = store / NAME
    _, big = tables(ROWS)
    body = big.to_csv(index=False).encode()
    for _attempt in range(5):
        before = snapshot(store)
        thread, result = in_background(
            lambda: s.call(
                "POST", params={"_action": "append"}, data=body,
                content_type="text/csv", timeout=120,
            )
        )  # fmt: skip
        killed = False
        while thread.is_alive():
            # the new data file is being written: the append is past its checks, under the
            # lock, and has not committed
            if any(p.startswith(".data-") and p.endswith(".tmp") for p in os.listdir(folder)):
                s.kill()
                killed = True
                break
            time.sleep(0.001)
        thread.join(timeout=30)
        if killed:
            break
        assert result and result[0].status_code == 200, result  # too quick: try again
    else:
        pytest.fail("no append could be caught while writing its data file")
    assert result and isinstance(result[0], requests.RequestException), result
    assert any(p.endswith(".tmp") for p in os.listdir(folder))  # the killed writer's debris
    assert snapshot(store) == before

    s = server()
    assert_recovered(s, store, before)
