"""The ``process`` executor's worker processes: ``Worker`` (one process and the socket to it)
and ``Pool`` (idle workers reused job after job; a killed one replaced at once)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection

from .job import JobCancelled

log = logging.getLogger("mlwidget.jobs")
_WORKER_MAIN = "import sys; from mlwidget.jobs.worker import run_main; run_main(sys.argv[1:])"


class Worker:
    """One worker process (``worker.run_main``) and the socket to it.

    Not ``multiprocessing``'s spawn: that runs the parent's main script again in the child,
    which fails in a script without an ``if __name__ == "__main__"`` guard. The child gets the
    parent's ``sys.path``, so it imports the same modules (and estimator classes)."""

    def __init__(self, memory_limit: int | None) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        cmd = [sys.executable, "-c", _WORKER_MAIN, str(theirs.fileno())]
        cmd += [str(memory_limit or 0), str(os.getpid())]
        self.process = subprocess.Popen(
            cmd, pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL
        )
        theirs.close()
        self.conn = Connection(ours.detach())
        self.pid = self.process.pid
        self.ready = False  # it says so once it has imported what jobs need
        self.memory_limit = memory_limit
        self._closing = threading.Lock()
        self._closed = False

    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.process.poll()

    def stop(self) -> None:
        """SIGKILL the process, from any thread. The socket stays open: the thread reading it
        sees the end of the stream, and closes it (``kill``)."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.kill()

    def kill(self) -> None:
        """Stop the process and close the socket, once, however many threads call it (two
        closes of one descriptor fail with EBADF, or close a file another thread has just
        opened under the same number)."""
        self.stop()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        with self._closing:
            if self._closed:
                return
            self._closed = True
        self.conn.close()


class Pool:
    """Idle worker processes, reused job after job; a killed one is replaced at once."""

    def __init__(self, memory_limit: int | None) -> None:
        self.memory_limit = memory_limit
        self._idle: list[Worker] = []
        self._busy: set[Worker] = set()
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self) -> Worker:
        with self._lock:
            if self._closed:
                raise JobCancelled("The server is shutting down; the job did not run.")
            while self._idle:
                candidate = self._idle.pop()
                if candidate.alive():
                    self._busy.add(candidate)
                    return candidate
                candidate.kill()
            fresh = Worker(self.memory_limit)
            self._busy.add(fresh)
            return fresh

    def release(self, w: Worker) -> None:
        with self._lock:
            self._busy.discard(w)
            if w.alive() and not self._closed:
                self._idle.append(w)
                return
        w.kill()

    def discard(self, w: Worker) -> None:
        """Kill ``w`` and start its replacement, so the next job finds a warm worker."""
        w.kill()
        with self._lock:
            self._busy.discard(w)
            if self._closed or self._idle:
                return
            try:
                self._idle.append(Worker(self.memory_limit))
            except OSError as exc:  # out of processes or files: the next job starts one
                log.warning("mlwidget: could not start a spare worker process: %s", exc)

    def warm(self) -> None:
        with self._lock:
            if not self._closed and not self._idle and not self._busy:
                self._idle.append(Worker(self.memory_limit))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, busy = self._idle, list(self._busy)
            self._idle, self._busy = [], set()
        for w in idle:
            w.kill()
        for w in busy:  # the job's driver is reading its socket: it closes it when it sees
            w.stop()  # the end of the stream (and discards the worker)
        for w in busy:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.process.wait(5)

    def pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._idle + list(self._busy)]
