"""SIGTERM stops the server even while a fit runs (and the fit never answers).

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
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from rest_helpers import free_port, jupyter_server
from test_main_command import cmdline, descendants, proc_stat, start_command

from mlwidget import MLModel

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SLOW = {
    "sgd": "class=SGDClassifier&max_iter=1000000000&tol=none",  # a C loop without the GIL
    "forest": "class=RandomForestClassifier&n_estimators=100000",  # a Python loop with it
}


# ---------------------------------------------------------------------------------- /proc


def alive(pid: int) -> bool:
    """Running (a zombie has exited: it only waits to be reaped)."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


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


def start_kernel(url: str, token: str, server: int, runtime: Path) -> int:
    """Start a kernel (the server shuts it down when it stops); return its pid once it has
    started up: it answers a ``kernel_info`` request on its own connection file."""
    from jupyter_client import BlockingKernelClient

    auth = {"Authorization": f"token {token}"}
    reply = requests.post(f"{url}/api/kernels", headers=auth, json={}, timeout=60)
    assert reply.status_code == 201, reply.text
    client = BlockingKernelClient()
    client.load_connection_file(str(runtime / f"kernel-{reply.json()['id']}.json"))
    # no heartbeat channel: on a busy machine a heartbeat late by a second made
    # wait_for_ready report "Kernel died" while the kernel was starting up
    client.start_channels(hb=False)
    try:
        client.wait_for_ready(timeout=120)
    finally:
        client.stop_channels()
    (kernel,) = [p for p in descendants(server) if "ipykernel" in cmdline(p)]
    return kernel


@dataclass
class Retrain:
    """A retrain POSTed from a thread; ``answer`` is its status code, or None if the server
    went away mid-request. SIGTERM during the fit must give None or 409 (the server cancelled
    the job on its way out: "nothing was stored"), never the 200 of a fit it waited for."""

    thread: threading.Thread
    answer: list[int | None]


def start_slow_fit(url: str, token: str, slow: str) -> Retrain:
    """Stage the slow parameters on ``slow``, POST a retrain (from a thread: it does not answer
    while the fit runs), and return once its job reports that it is fitting."""
    auth = {"Authorization": f"token {token}"}
    reply = requests.put(f"{url}/mlhandler/slow?_model&{slow}", headers=auth, timeout=60)
    assert reply.status_code == 200, reply.text
    answer: list[int | None] = []

    def retrain() -> None:
        try:
            reply = requests.post(f"{url}/mlhandler/slow?_action=retrain", headers=auth)
            answer.append(reply.status_code)
        except requests.RequestException:
            answer.append(None)  # the server went away mid-request

    thread = threading.Thread(target=retrain, daemon=True)
    thread.start()
    wait_until(
        lambda: any(
            job["status"] == "running" and job["stage"] == "fit"
            for job in requests.get(f"{url}/mlhandler/slow?_jobs", headers=auth, timeout=60).json()
        ),
        "the retrain's job fitting",
    )
    assert thread.is_alive(), f"the retrain answered {answer}: it was not slow"
    return Retrain(thread, answer)


def wait_until(check: Callable[[], bool], what: str, within: float = 120) -> None:
    """Poll ``check()`` until it holds; fail if it never does (a bound, not a measurement)."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {within:g} s"
        time.sleep(0.1)


def stop(signalled: int, pids: list[int], within: float = 120) -> list[int]:
    """SIGTERM ``signalled`` and wait until every process in ``pids`` is gone; return those
    still alive after ``within`` seconds (a bound on a hang, not a measurement), killed."""
    os.kill(signalled, signal.SIGTERM)
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if alive(p)]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


# ---------------------------------------------------------------------------------- servers


@pytest.mark.parametrize("slow", sorted(SLOW))
def test_sigterm_stops_the_server_during_a_fit(tmp_path: Path, slow_store: Path, slow: str):
    with jupyter_server(tmp_path, slow_store) as (url, token):
        pid = server_pid(tmp_path / "runtime")
        kernel = start_kernel(url, token, pid, tmp_path / "runtime")
        retrain = start_slow_fit(url, token, SLOW[slow])
        tree = [pid, *descendants(pid)]
        assert kernel in tree
        left = stop(pid, tree)
        retrain.thread.join(60)
    log = (tmp_path / "server.log").read_text()
    assert not left, f"still running after SIGTERM: {left}:\n{log[-3000:]}"
    # it stopped during the fit, not after it: the retrain never succeeded
    assert retrain.answer in ([None], [409]), f"the retrain: {retrain.answer}:\n{log[-3000:]}"
    assert "Shutting down 1 kernel" in log  # its own shutdown ran: the kernel was stopped


def test_sigterm_stops_jupyter_mlwidget_during_a_fit(tmp_path: Path, slow_store: Path):
    with start_command(tmp_path, [f"--port={free_port()}", f"--store={slow_store}"]) as cmd:
        url = cmd.printed("REST endpoint").rsplit("/mlhandler/", 1)[0]
        token = cmd.printed("Token")
        server = cmd.proc.pid  # the command is the server
        assert server_pid(tmp_path / "runtime") == server
        kernel = start_kernel(url, token, server, tmp_path / "runtime")
        retrain = start_slow_fit(url, token, SLOW["sgd"])
        tree = [cmd.proc.pid, *descendants(cmd.proc.pid)]
        assert kernel in tree
        left = stop(cmd.proc.pid, tree)
        retrain.thread.join(60)
        code = cmd.proc.wait(60)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert not left, f"still running after SIGTERM: {left}:\n{stderr[-3000:]}"
    assert code == 0, stderr[-3000:]
    assert retrain.answer in ([None], [409]), f"the retrain answered {retrain.answer}"
    assert "mlwidget: stopped." in stderr
    # the server stopped by itself: the launcher's watchdog (launcher.STOP_TIMEOUT) never fired
    assert "did not stop" not in stderr


# ---------------------------------------------------------------------------------- executor


def test_interpreter_exits_while_a_worker_runs(tmp_path: Path) -> None:
    """A plain interpreter whose worker is busy (forever) exits when its main thread ends."""
    script = textwrap.dedent(
        """
        import threading, time
        from mlwidget_server.workers import WorkerPool

        spinning, sleeping = threading.Event(), threading.Event()

        def spin():
            spinning.set()
            while True:
                sum(range(1000))

        def nap():
            sleeping.set()
            time.sleep(3600)

        pool = WorkerPool(max_workers=2)
        pool.submit(spin)
        pool.submit(nap)
        assert spinning.wait(60) and sleeping.wait(60)
        print("main done", flush=True)
        """
    )
    # the timeout bounds a hang (the workers run forever), it measures nothing
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "main done" in result.stdout


@pytest.fixture
def pool() -> Iterator:
    from mlwidget_server.workers import WorkerPool

    executor = WorkerPool(max_workers=2)
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)


def test_worker_threads_are_lazy_named_daemons_up_to_max_workers(pool) -> None:
    def mine() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t in pool._threads]

    def until_idle() -> None:
        """The worker has finished its task and waits for the next (its result is set just
        before it says so)."""
        assert pool._idle.acquire(timeout=60)
        pool._idle.release()

    assert not mine()  # nothing runs until work arrives
    assert pool.submit(lambda: 42).result(10) == 42
    assert len(mine()) == 1
    until_idle()
    assert pool.submit(pow, 2, 10).result(10) == 1024
    assert len(mine()) == 1  # an idle worker is reused, not joined by another
    until_idle()
    release = threading.Event()
    busy = [pool.submit(release.wait, 30) for _ in range(4)]
    threads = mine()  # (a thread starts in submit, or never)
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
    started = [threading.Event() for _ in range(2)]

    def hold(started: threading.Event) -> bool:
        started.set()
        return release.wait(60)

    running = [pool.submit(hold, event) for event in started]
    queued = [pool.submit(time.sleep, 0) for _ in range(3)]
    assert all(event.wait(60) for event in started)  # both workers busy: the rest is queued
    pool.shutdown(wait=False, cancel_futures=True)
    assert all(f.running() for f in running)  # it returned without waiting for them
    assert all(f.cancelled() for f in queued)
    with pytest.raises(CancelledError):
        queued[0].result(0)
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
