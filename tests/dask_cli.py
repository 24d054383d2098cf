"""A Dask cluster as users deploy one: ``dask scheduler`` and ``dask worker`` processes started
from the CLI (not LocalCluster), on a free port of 127.0.0.1, for the fault tests
(tests/test_dask_faults.py). Every process started here is stopped by ``close()``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DASK = str(Path(sys.executable).with_name("dask"))
WAIT = 90.0  # seconds a process may take to come up on a busy two-core machine (a bound)
TESTS = str(Path(__file__).resolve().parent)
ENV_ADDRESS = "DASK_CLI_TEST_ADDRESS"  # the scheduler ``connect`` (a dask_cluster) connects to


# --- importable by the workers (they run with tests/ on PYTHONPATH) and by dask_cluster


def gated(payload: dict[str, Any], report: Any) -> str:
    """A job's work that runs until the file ``payload["go"]`` exists (a bound: 3 * WAIT),
    then answers the address of the worker that ran it."""
    from distributed import get_worker

    report("fit", 0.5)
    go, deadline = Path(payload["go"]), time.monotonic() + 3 * WAIT
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{go} never appeared")
        time.sleep(0.05)
    return str(get_worker().address)


def connect() -> Any:
    """A ``dask_cluster`` callable returning a ``Client`` (of $DASK_CLI_TEST_ADDRESS)."""
    from distributed import Client

    return Client(os.environ[ENV_ADDRESS], set_as_default=False)


def local_cluster() -> Any:
    """A ``dask_cluster`` callable returning a cluster object (one worker process)."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


class CLICluster:
    """``dask scheduler`` on ``address`` and ``dask worker`` processes (one thread each, no
    nanny: the process started is the worker, so a test can SIGKILL it)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self._logs: list[Any] = []

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None) -> subprocess.Popen:
        log = open(self.tmp / f"{name}-{len(self._logs)}.log", "wb")  # noqa: SIM115
        self._logs.append(log)
        full_env = {**os.environ, "PYTHONPATH": TESTS, **(env or {})}
        full_env.pop("MLWIDGET_DASK_SCHEDULER", None)
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=full_env)

    def start_scheduler(self) -> None:
        """Start (or start again, on the same address) the scheduler; wait until it listens."""
        args = [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--dashboard-address", "127.0.0.1:0"]
        self.scheduler = self._spawn("scheduler", args, None)
        deadline = time.monotonic() + WAIT
        while True:
            assert self.scheduler.poll() is None, self.logs()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, self.logs()
                time.sleep(0.1)

    def start_worker(self, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a worker, with tests/ on its PYTHONPATH unless ``env`` says otherwise (it
        joins by itself: ``wait_for_workers`` on a client to know)."""
        args = [DASK, "worker", self.address, "--nworkers", "1", "--nthreads", "1"]
        args += ["--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--death-timeout", "60"]
        worker = self._spawn("worker", args, env)
        self.workers.append(worker)
        return worker

    def kill_scheduler(self) -> None:
        assert self.scheduler is not None
        self.scheduler.kill()
        self.scheduler.wait(15)

    def kill_workers(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(15)

    def logs(self) -> str:
        for log in self._logs:
            log.flush()
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.tmp.glob("*.log"))
        )

    def close(self) -> None:
        for worker in self.workers:
            _stop(worker)
        if self.scheduler is not None:
            _stop(self.scheduler)
        for log in self._logs:
            log.close()
