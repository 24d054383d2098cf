"""SIGTERM stops the server within 10 s even while a fit runs.

Training runs on the extension's worker threads; a fit that takes minutes (an SGDClassifier
with ``max_iter=1e9`` and no tolerance, a forest of 100,000 trees) must not keep the process
alive after SIGTERM: the workers are daemon threads that the interpreter does not join at exit
(``mlwidget_server.workers``). Checked on real processes:

- ``python -m jupyter_server`` with the extension (and a kernel, which the server shuts down
  on its way out), and
- ``jupyter mlwidget``, which runs that server in its own process (no child) and stops it on
  SIGTERM;

plus the executor itself, in a plain interpreter, and its contract.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from rest_helpers import free_port, jupyter_server
from test_main_command import cmdline, descendants, proc_stat, start_command

from mlwidget import MLModel

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

STOP_LIMIT = 10.0  # seconds from SIGTERM until every process is gone
SLOW = {
    "sgd": "class=SGDClassifier&max_iter=1000000000&tol=none",  # a C loop without the GIL
    "forest": "class=RandomForestClassifier&n_estimators=100000",  # a Python loop with it
}
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------- /proc


def alive(pid: int) -> bool:
    """Running (a zombie has exited: it only waits to be reaped)."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def cpu_seconds(pid: int) -> float:
    stat = proc_stat(pid)
    return (int(stat[11]) + int(stat[12])) / TICKS if stat else 0.0


def server_pid(runtime: Path) -> int:
    """The pid of the one Jupyter server that writes its info file into ``runtime``."""
    (info,) = runtime.glob("jpserver-*.json")
    return json.loads(info.read_text())["pid"]


# ---------------------------------------------------------------------------------- helpers


@pytest.fixture
def slow_store(tmp_path: Path) -> Path:
    """A store with the model ``slow``: a logistic regression on a few hundred rows."""
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    data["y"] = (data["a"] + data["b"] > 0).astype(int)
    store = tmp_path / "store"
    MLModel("slow", data=data, class_="LogisticRegression", target_col="y", store=store)
    return store


def start_kernel(url: str, token: str, server: int) -> int:
    """Start a kernel (the server shuts it down when it stops); return its pid once it has
    started up (its CPU time settles: the REST API says "starting" until a client talks)."""
    auth = {"Authorization": f"token {token}"}
    reply = requests.post(f"{url}/api/kernels", headers=auth, json={}, timeout=60)
    assert reply.status_code == 201, reply.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        kernels = [p for p in descendants(server) if "ipykernel" in cmdline(p)]
        if kernels:
            before = cpu_seconds(kernels[0])
            time.sleep(0.5)
            if cpu_seconds(kernels[0]) == before:
                return kernels[0]
        else:
            time.sleep(0.2)
    pytest.fail("the kernel did not start in 60 s")


def start_slow_fit(url: str, token: str, slow: str, pid: int) -> threading.Thread:
    """Stage the slow parameters on ``slow``, then POST a retrain that will not answer (in a
    thread); return once the server ``pid`` burns CPU on it (or after a few seconds)."""
    auth = {"Authorization": f"token {token}"}
    reply = requests.put(f"{url}/mlhandler/slow?_model&{slow}", headers=auth, timeout=60)
    assert reply.status_code == 200, reply.text

    def retrain() -> None:
        try:
            requests.post(f"{url}/mlhandler/slow?_action=retrain", headers=auth, timeout=300)
        except requests.RequestException:
            pass  # the server goes away mid-request

    thread = threading.Thread(target=retrain, daemon=True)
    before = cpu_seconds(pid)
    thread.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and cpu_seconds(pid) - before < 1.5:
        time.sleep(0.1)
    assert thread.is_alive(), "the retrain answered: it was not slow"
    return thread


def stop_and_time(signalled: int, pids: list[int], wait: float = 30) -> float:
    """SIGTERM ``signalled``; seconds until every process in ``pids`` is gone (at most
    ``wait``: then whatever is left is killed and ``wait`` is returned)."""
    start = time.monotonic()
    os.kill(signalled, signal.SIGTERM)
    while any(alive(p) for p in pids) and time.monotonic() - start < wait:
        time.sleep(0.05)
    took = time.monotonic() - start
    left = [p for p in pids if alive(p)]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return wait if left else took


# ---------------------------------------------------------------------------------- servers


@pytest.mark.parametrize("slow", sorted(SLOW))
def test_sigterm_stops_the_server_during_a_fit(tmp_path: Path, slow_store: Path, slow: str):
    with jupyter_server(tmp_path, slow_store) as (url, token):
        pid = server_pid(tmp_path / "runtime")
        kernel = start_kernel(url, token, pid)
        thread = start_slow_fit(url, token, SLOW[slow], pid)
        tree = [pid, *descendants(pid)]
        assert kernel in tree
        took = stop_and_time(pid, tree)
        thread.join(10)
    log = (tmp_path / "server.log").read_text()
    assert took < STOP_LIMIT, f"the server took {took:.1f} s to stop:\n{log[-3000:]}"
    assert "Shutting down 1 kernel" in log  # its own shutdown ran: the kernel was stopped
    print(f"{slow}: stopped in {took:.2f} s")


def test_sigterm_stops_jupyter_mlwidget_during_a_fit(tmp_path: Path, slow_store: Path):
    with start_command(tmp_path, [f"--port={free_port()}", f"--store={slow_store}"]) as cmd:
        url = cmd.printed("REST endpoint").rsplit("/mlhandler/", 1)[0]
        token = cmd.printed("Token")
        server = cmd.proc.pid  # the command is the server
        assert server_pid(tmp_path / "runtime") == server
        kernel = start_kernel(url, token, server)
        thread = start_slow_fit(url, token, SLOW["sgd"], server)
        tree = [cmd.proc.pid, *descendants(cmd.proc.pid)]
        assert kernel in tree
        took = stop_and_time(cmd.proc.pid, tree, wait=45)
        thread.join(10)
        assert cmd.proc.wait(10) == 0
    stderr = (tmp_path / "stderr.txt").read_text()
    assert took < STOP_LIMIT, f"jupyter mlwidget took {took:.1f} s to stop:\n{stderr[-3000:]}"
    assert "mlwidget: stopped." in stderr
    assert "did not stop" not in stderr  # the server stopped by itself: no watchdog
    print(f"jupyter mlwidget: stopped in {took:.2f} s")


# ---------------------------------------------------------------------------------- executor


def test_interpreter_exits_while_a_worker_runs(tmp_path: Path) -> None:
    """A plain interpreter whose worker is busy (forever) exits when its main thread ends."""
    script = textwrap.dedent(
        """
        import sys, time
        from mlwidget_server.workers import WorkerPool

        def spin():
            while True:
                sum(range(1000))

        pool = WorkerPool(max_workers=2)
        pool.submit(spin)
        pool.submit(time.sleep, 3600)
        time.sleep(0.5)
        print("main done", flush=True)
        """
    )
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "main done" in result.stdout
    assert time.monotonic() - start < STOP_LIMIT


@pytest.fixture
def pool() -> Iterator:
    from mlwidget_server.workers import WorkerPool

    executor = WorkerPool(max_workers=2)
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)


def test_worker_threads_are_lazy_named_daemons_up_to_max_workers(pool) -> None:
    def mine() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t in pool._threads]

    assert not mine()  # nothing runs until work arrives
    assert pool.submit(lambda: 42).result(10) == 42
    assert len(mine()) == 1  # an idle worker is reused, not joined by another
    assert pool.submit(pow, 2, 10).result(10) == 1024
    assert len(mine()) == 1
    release = threading.Event()
    busy = [pool.submit(release.wait, 30) for _ in range(4)]
    time.sleep(0.3)
    threads = mine()
    assert len(threads) == 2
    assert all(t.daemon and t.name.startswith("mlwidget") for t in threads)
    release.set()
    assert [f.result(10) for f in busy] == [True] * 4


def test_errors_reach_the_future(pool) -> None:
    future = pool.submit(int, "x")
    with pytest.raises(ValueError):
        future.result(10)
    assert pool.submit(sum, [1, 2]).result(10) == 3  # the worker survived


def test_shutdown_cancels_queued_work_and_refuses_more(pool) -> None:
    release = threading.Event()
    running = [pool.submit(release.wait, 30) for _ in range(2)]
    queued = [pool.submit(time.sleep, 0) for _ in range(3)]
    time.sleep(0.3)
    start = time.monotonic()
    pool.shutdown(wait=False, cancel_futures=True)
    assert time.monotonic() - start < 1  # does not wait for the running work
    assert all(f.cancelled() for f in queued)
    with pytest.raises(CancelledError):
        queued[0].result(0)
    assert all(f.running() for f in running)
    with pytest.raises(RuntimeError):
        pool.submit(time.sleep, 0)
    release.set()
    assert [f.result(10) for f in running] == [True, True]
    pool.shutdown(wait=True)  # the workers exit once the running work is done
    assert not any(t.is_alive() for t in pool._threads)


def test_shutdown_waits_by_default_and_runs_the_queued_work() -> None:
    from mlwidget_server.workers import WorkerPool

    with WorkerPool(max_workers=1) as executor:
        futures = [executor.submit(time.sleep, 0.1) for _ in range(3)]
    assert all(f.done() and not f.cancelled() for f in futures)
    assert not any(t.is_alive() for t in executor._threads)
    with WorkerPool(max_workers=3) as executor:
        assert list(executor.map(abs, [-1, -2, 3])) == [1, 2, 3]


def test_a_pool_dropped_without_shutdown_lets_its_threads_end() -> None:
    import gc

    from mlwidget_server.workers import WorkerPool

    executor = WorkerPool(max_workers=2)
    assert executor.submit(abs, -1).result(10) == 1
    (thread,) = executor._threads
    del executor
    gc.collect()
    thread.join(10)
    assert not thread.is_alive()
