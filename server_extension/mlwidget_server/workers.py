"""``WorkerPool``: the extension's worker threads, which never hold the server up at exit.

``concurrent.futures.ThreadPoolExecutor`` joins its threads when the interpreter exits, so a
server whose worker is fitting a slow model (minutes, or for ever) keeps running after SIGTERM
until the fit ends. Python cannot interrupt a running fit, so this pool's threads are daemon
threads that nothing joins at exit: when the server's main thread is done (it has shut its
kernels down), the process ends, abandoning whatever fit is still running. Nothing is lost that
a finished fit would have kept: the model store only commits a fit once it is complete, and a
dead process's store lock goes with it.

Threads are started lazily, one per submitted task while fewer than ``max_workers`` exist and
none is idle, and are named ``mlwidget_0``, ``mlwidget_1``, ...

``collect_nothing_at_exit()`` (which a pool calls) spares the exiting interpreter its last
garbage collections, which take seconds in a server that holds scikit-learn, pandas and
Jupyter (most of its shutdown time once nothing waits for the workers).
"""

from __future__ import annotations

import atexit
import gc
import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

_freeze_registered = False


def collect_nothing_at_exit() -> None:
    """At interpreter exit, skip the final garbage collections: an exit handler moves every
    object to the collector's permanent generation (``gc.freeze()``), so the collections of
    the interpreter's finalization find nothing to scan. Exit handlers and reference counting
    still close and flush what they do; only garbage in reference cycles is left to the end of
    the process, which returns all memory anyway. Safe to call more than once; nothing changes
    before exit."""
    global _freeze_registered
    if not _freeze_registered:
        _freeze_registered = True
        atexit.register(gc.freeze)


class _Task:
    __slots__ = ("future", "fn", "args", "kwargs")

    def __init__(self, future: Future, fn: Callable, args: tuple, kwargs: dict) -> None:
        self.future, self.fn, self.args, self.kwargs = future, fn, args, kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
            self = None  # type: ignore[assignment]  # drop the traceback's reference cycle
        else:
            self.future.set_result(result)


def _work(pool_ref: weakref.ref, tasks: queue.SimpleQueue, idle: threading.Semaphore) -> None:
    """A worker thread: run tasks until ``None``, which ``shutdown`` queues after the last task
    (and the callback of ``pool_ref`` when the pool is collected without a shutdown)."""
    while True:
        task = tasks.get()
        if task is None:
            tasks.put(None)  # for the next worker
            return
        task.run()
        del task
        idle.release()


class WorkerPool(Executor):
    """An executor whose ``max_workers`` threads are daemon threads, started on demand and not
    joined at interpreter exit (``ThreadPoolExecutor``'s are)."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "mlwidget") -> None:
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._shutdown = False
        collect_nothing_at_exit()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future: Future = Future()
            self._tasks.put(_Task(future, fn, args, kwargs))
            self._add_thread()
            return future

    def _add_thread(self) -> None:
        if self._idle.acquire(timeout=0):
            return  # an idle worker takes the task
        if len(self._threads) >= self._max_workers:
            return  # it waits for a busy worker
        tasks = self._tasks

        def wake(_: weakref.ref, tasks: queue.SimpleQueue = tasks) -> None:
            tasks.put(None)  # the pool was collected without a shutdown: let the workers end

        thread = threading.Thread(
            target=_work,
            args=(weakref.ref(self, wake), tasks, self._idle),
            name=f"{self._prefix}_{len(self._threads)}",
            daemon=True,
        )
        thread.start()
        self._threads.add(thread)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more tasks; with ``cancel_futures``, cancel those not started yet; with
        ``wait``, wait for the running ones to finish. Running tasks are never interrupted."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        task = self._tasks.get_nowait()
                    except queue.Empty:
                        break
                    if task is not None:
                        task.future.cancel()
            self._tasks.put(None)
        if wait:
            for thread in list(self._threads):
                thread.join()
