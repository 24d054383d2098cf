"""The Dask executor's link to its cluster (see dask_executor.py).

- A ``distributed.Client`` made on first use, and made again when the last one has closed: a
  client that lost its scheduler tries to reconnect for its timeout, then closes for good, so a
  cached one would fail every job after a scheduler restart.
- The cluster comes from ``dask_scheduler`` (an address) or ``dask_cluster`` (an import path
  ``package.module:callable``, or the callable, returning a ``Client`` or a cluster object:
  Dask Gateway, dask-kubernetes, a ``Client`` with a TLS ``Security``...).
- Before a job: wait up to ``dask_worker_wait`` seconds for a worker (an autoscaler may be
  starting one), and compare each new worker's mlwidget, scikit-learn and Python with the
  server's (pickled pipelines travel both ways).
- After a task failed: which worker left the cluster holding it, and why (the scheduler's
  ``remove-worker`` events).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import MLWidgetError, reason
from .job import Job, Stop

log = logging.getLogger("mlwidget.jobs")

CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler (and a lost client's reconnect window)
WORKER_POLL = 0.25  # seconds between looks for a worker while none is there
# What must match between the server and every worker: distributions by their names in
# importlib.metadata (what ``Client.get_versions`` reports), Python by major.minor.
CHECKED = ("mlwidget", "scikit-learn", "python")
ClusterSpec = str | Callable[[], Any]
ENV_WORKER_WAIT = "MLWIDGET_DASK_WORKER_WAIT"
DASK_WORKER_WAIT = 60.0  # seconds a job waits for a Dask worker (an autoscaler's) by default


def load_cluster(spec: ClusterSpec) -> Any:
    """Call ``dask_cluster`` (an import path ``package.module:callable``, or the callable)."""
    if callable(spec):
        return spec()
    module_name, sep, attr = str(spec).partition(":")
    if not sep or not module_name or not attr:
        raise MLWidgetError(
            f"Expected dask_cluster to be an import path 'package.module:callable', got "
            f"{spec!r}. Name a function that returns a distributed.Client or a Dask cluster.",
            status=503,
        )
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise MLWidgetError(
            f"dask_cluster={spec!r} could not be imported ({reason(exc)}). Expected the import "
            "path of a function the server can import, returning a distributed.Client or a "
            "Dask cluster.",
            status=503,
        ) from None
    if not callable(target):
        raise MLWidgetError(
            f"dask_cluster={spec!r} is a {type(target).__name__}, not a function. Name a "
            "function that returns a distributed.Client or a Dask cluster.",
            status=503,
        )
    return target()


def worker_wait(value: float | None) -> float:
    """``dask_worker_wait``: the argument, else ``$MLWIDGET_DASK_WORKER_WAIT``, else 60 s."""
    if value is not None:
        return float(value)
    raw = os.environ.get(ENV_WORKER_WAIT, "")
    try:
        return float(raw) if raw else DASK_WORKER_WAIT
    except ValueError:
        raise ValueError(
            f"Expected ${ENV_WORKER_WAIT} to be a number of seconds, got {raw!r}."
        ) from None


def version_problems(versions: dict[str, Any], workers: Iterable[str] | None = None) -> list[str]:
    """What differs between the client and the ``workers`` (default: all) in the answer of
    ``Client.get_versions(packages=["mlwidget", "scikit-learn"])``, one line per worker and
    package; empty when everything in ``CHECKED`` matches."""
    mine = versions["client"]["packages"]
    answers = versions.get("workers") or {}
    problems = []
    for address in sorted(answers if workers is None else set(workers) & set(answers)):
        info = answers[address]
        theirs = info.get("packages", {}) if isinstance(info, dict) else {}
        for package in CHECKED:
            want, have = mine.get(package), theirs.get(package)
            if package == "python":
                want, have = _minor(want), _minor(have)
            if have is None and want is not None:
                problems.append(f"worker {address} has no {package} (the server has {want})")
            elif have != want:
                problems.append(f"worker {address} has {package} {have}, the server {want}")
    return problems


def _minor(version: str | None) -> str | None:
    return None if version is None else ".".join(str(version).split(".")[:2])


def dashboard_link(client: Any) -> str | None:
    """The scheduler's dashboard URL, or None when it serves none."""
    try:
        link = client.dashboard_link
    except Exception:  # no "dashboard" service (a scheduler started without one)
        return None
    return str(link) if link else None


def lost_worker(client: Any, keys: Iterable[str]) -> tuple[str, str] | None:
    """``(worker address, why it left)`` for the last worker the scheduler removed while it held
    or ran one of ``keys``; None if no worker left with them (or the scheduler cannot say)."""
    wanted = {str(key) for key in keys}
    try:
        events = client.get_events("all")
    except Exception:
        return None
    for _, event in reversed(events):
        if not isinstance(event, dict) or event.get("action") != "remove-worker":
            continue
        held = set()
        for field in ("processing-tasks", "lost-scattered-tasks", "lost-computed-tasks"):
            held |= {str(key) for key in event.get(field) or ()}
        if held & wanted:
            return str(event.get("worker", "?")), _cause(event)
    return None


def _cause(event: dict[str, Any]) -> str:
    stimulus = str(event.get("stimulus_id", ""))
    if event.get("expected"):
        return "it was retired or restarted on purpose (an autoscaler scaling down, a restart)"
    if stimulus.startswith("handle-worker-cleanup"):
        return (
            "its connection to the scheduler closed without a goodbye: the process was killed "
            "(out of memory, or by a signal) or its machine went away"
        )
    if "ttl" in stimulus or "heartbeat" in stimulus:
        return "it stopped answering the scheduler's heartbeats"
    return f"the scheduler removed it ({stimulus or 'no reason given'})"


class Connection:
    """The client of one cluster: made on first use, made again after it closed."""

    def __init__(
        self, scheduler: str | None, cluster: ClusterSpec | None, worker_wait: float
    ) -> None:
        self.scheduler = scheduler
        self.cluster = cluster
        self.worker_wait = max(0.0, float(worker_wait))
        self.dashboard: str | None = None
        self._made: Any = None  # what dask_cluster returned: a cluster, or a client
        self._address: str | None = scheduler
        self._client: Any = None
        self._lock = threading.Lock()
        self._checked: set[str] = set()  # workers whose versions matched

    @property
    def where(self) -> str:
        """The cluster, for messages."""
        if self._address:
            return f"the Dask scheduler at {self._address}"
        return f"the Dask cluster of dask_cluster={self.cluster!r}"

    @property
    def status(self) -> str | None:
        """The current client's status ("running", "connecting", "closed"...), None before one."""
        client = self._client
        return None if client is None else str(client.status)

    def client(self) -> Any:
        """A running client: the last one, or a new one if it has closed (a 503 when the dask
        extra is missing or the scheduler cannot be reached)."""
        with self._lock:
            client = self._client
            if client is not None and client.status == "connecting":
                # it lost the scheduler and retries for its timeout, then closes: wait for either
                deadline = time.monotonic() + CONNECT_TIMEOUT + 5
                while client.status == "connecting" and time.monotonic() < deadline:
                    time.sleep(0.1)
            if client is not None and client.status != "running":
                log.warning(
                    "mlwidget: the client of %s is %s; connecting again", self.where, client.status
                )
                self._close(client)
                client = self._client = None
            if client is None:
                client = self._connect()
                self._client = client
                self._checked = set()
                self.dashboard = dashboard_link(client)
                log.info("mlwidget: connected to %s (dashboard: %s)", self.where, self.dashboard)
            return client

    def _connect(self) -> Any:
        try:
            from distributed import Client
        except ImportError:
            raise MLWidgetError(
                "executor='dask' needs the dask extra: pip install 'mlwidget[dask]'.", status=503
            ) from None
        try:
            if self.cluster is not None and self._made is None:
                self._made = load_cluster(self.cluster)
                if isinstance(self._made, Client):  # the first client is the one it made
                    self._address = self._made.scheduler.address
                    return self._made
            made = self._made
            if isinstance(made, Client):  # again: the same scheduler, with the same security
                return Client(
                    self._address, security=made.security, timeout=CONNECT_TIMEOUT,
                    set_as_default=False,
                )  # fmt: skip
            if made is not None:
                if not isinstance(getattr(made, "scheduler_address", None), str):
                    raise MLWidgetError(
                        f"dask_cluster={self.cluster!r} returned a {type(made).__name__}. "
                        "Expected a distributed.Client or a Dask cluster (an object with a "
                        "scheduler_address, as Dask Gateway's and dask-kubernetes' have).",
                        status=503,
                    )
                self._address = made.scheduler_address
                return Client(made, timeout=CONNECT_TIMEOUT, set_as_default=False)
            return Client(self.scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except MLWidgetError:
            raise
        except Exception as exc:
            log.error("mlwidget: could not connect to %s: %s", self.where, reason(exc))
            raise MLWidgetError(
                f"Could not reach {self.where} ({reason(exc)}). Expected a running scheduler (dask_scheduler or "
                "dask_cluster); start it, or fix the setting, and try again.",
                status=503,
            ) from None

    def ready(self, job: Job) -> Any:
        """The client, once the cluster has a worker whose versions match the server's."""
        client = self.client()
        job.dashboard = self.dashboard
        workers = self._wait_for_workers(client, job)
        with self._lock:
            new = set(workers) - self._checked
        if new:
            self._check_versions(client, job, new)
        return client

    def _wait_for_workers(self, client: Any, job: Job) -> dict[str, int]:
        began = time.monotonic()
        told = False
        try:
            while True:
                workers = client.nthreads()
                if workers:
                    return dict(workers)
                waited = time.monotonic() - began
                if waited >= self.worker_wait:
                    raise MLWidgetError(
                        f"No Dask workers: {self.where} had none for {self.worker_wait:g} s "
                        f"(dask_worker_wait), so job {job.id} ({job.action} of {job.model!r}) "
                        "could not run; nothing was stored. Start workers (dask worker "
                        f"{self._address or 'SCHEDULER-ADDRESS'}) or check the cluster's "
                        "autoscaler, then try again.",
                        status=503,
                    )
                if not told:
                    log.info(
                        "mlwidget: job %s waits up to %g s for a worker of %s",
                        job.id, self.worker_wait, self.where,
                    )  # fmt: skip
                    told = True
                if job.stop.is_set():
                    raise Stop
                time.sleep(WORKER_POLL)
        finally:  # waiting for a worker is not the job's time (as for a worker process)
            job.waited += time.monotonic() - began

    def _check_versions(self, client: Any, job: Job, workers: set[str]) -> None:
        try:
            versions = client.get_versions(check=False, packages=["mlwidget", "scikit-learn"])
        except Exception as exc:  # a worker that cannot answer fails its tasks more clearly
            log.warning("mlwidget: could not compare the Dask workers' versions: %s", reason(exc))
            return
        problems = version_problems(versions, workers)
        if problems:
            log.error("mlwidget: Dask workers differ from the server: %s", "; ".join(problems))
            raise MLWidgetError(
                f"Job {job.id} ({job.action} of {job.model!r}) did not run: the workers of "
                f"{self.where} must have the server's mlwidget, scikit-learn and Python "
                "(fitted pipelines are pickled between them), but "
                f"{'; '.join(problems)}. Install the server's versions on those workers "
                "(pip install 'mlwidget[dask]' in the same environment) and restart them.",
                status=503,
            )
        with self._lock:
            self._checked |= workers & set(versions.get("workers") or {})

    @staticmethod
    def _close(client: Any) -> None:
        try:
            client.close(timeout=2)
        except Exception:
            pass

    def close(self) -> None:
        """Close the client, if one was made (a cluster dask_cluster made is its owner's)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            self._close(client)
