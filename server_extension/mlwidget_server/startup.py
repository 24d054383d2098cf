"""The models of the server config (``MLWidgetApp.models``, ``config_yaml``), created when the
server starts and trained as jobs, and what each one's start says to requests and the listing.

A configured model that is new is created untrained (its options and data committed, one
model after another on a thread of its own) and trained by a retrain job on the server's
runner: in a worker process by default, within ``job_timeout`` and ``job_memory``,
cancellable with ``DELETE ?_job=ID``. The server answers meanwhile, and the listing shows the
model ``training`` with its job. A request to it waits for that job (on the event loop, as a
request that starts a job waits for it by default) for ``training_wait`` seconds at most (0:
not at all), then answers 503 naming the job; ``?_job`` and ``?_jobs`` answer at once. A failed
or cancelled start-up training is shown as the model's error, and a model this start created
is removed then: the next start tries again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, Protocol

from mlwidget import MLModel, MLWidgetError, datasets
from mlwidget import options as opt
from mlwidget.jobs import Job, TooManyJobs
from mlwidget.store import Store

from .workers import WorkerPool  # daemon threads: a running fit never delays exit

# What MLModel(...) trains a new model from: a configured model that would train is created
# without these, then configured with them and trained by a job.
TRAINING_KEYS = ("class", "target_col", "path", "params")


class Training(MLWidgetError):
    """The model is in its start-up training (503); the answer names the job."""

    status = 503


class Host(Protocol):
    """What the start-up needs of the registry whose models it creates."""

    store_dir: str
    store: Store
    allowed_classes: tuple[str, ...]
    log: logging.Logger
    training_wait: float

    def adopt(self, model: MLModel) -> MLModel: ...

    def remember(self, name: str, model: MLModel) -> MLModel: ...

    def forget(self, name: str) -> None: ...


class Startup:
    """The configured models of one server: each one's options, its creation (a future on
    the start-up thread), its start-up job, and its failure if it had one."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.log = host.log
        # configured models are created one after another here, never on the request threads
        self.pool = WorkerPool(max_workers=1, thread_name_prefix="mlwidget-startup")
        self.configured: dict[str, tuple[dict, str | None]] = {}
        self.pending: dict[str, Future] = {}  # configured models being created
        self.training: dict[str, Job] = {}  # each configured model's start-up job
        # start-up job id -> whether that start created the model; gone once the job's end
        # was dealt with (settle)
        self.created: dict[str, bool] = {}
        # configured models whose data is a source that workers read (datasets.worker_source)
        self.sources: dict[str, datasets.Dataset] = {}
        self.settle_lock = threading.Lock()
        self.closing = False  # shutting down: a start-up job cancelled then is no error
        self.failed: dict[str, str] = {}

    def configure_models(self, specs: dict[str, tuple[dict, str | None]]) -> None:
        """Create (or open) each configured model on the start-up thread; those that need a
        fit get a retrain job. The server answers meanwhile."""
        self.configured.update(specs)
        for name, (options, base_dir) in specs.items():
            self.pending[name] = self.pool.submit(self.start_configured, name, options, base_dir)

    def create_configured(self, name: str, options: dict, base_dir: str | None) -> MLModel:
        """Create or open a configured model and wait for its training job, if it has one
        (raises the job's error once the failure is recorded)."""
        model, job = self.start_configured(name, options, base_dir)
        if job is not None:
            try:
                job.result()
            finally:
                self.settle(name, job)
        return model

    def start_configured(
        self, name: str, options: dict, base_dir: str | None
    ) -> tuple[MLModel, Job | None]:
        """Create or open a configured model, and start its first fit as a job if it needs
        one. If creating it fails, nothing half-made stays in the store (the next start tries
        again) and the error shows in the listing and ``?_model``."""
        store = self.host.store
        existed = store.exists(name)
        try:
            model, start = self.create_or_open(name, options, base_dir, existed)
            job = self.start_job(name, model, created=not existed) if start else None
        except Exception as exc:
            if not existed:  # removed before the failure shows
                with contextlib.suppress(Exception):
                    store.remove(name)
            self.failed[name] = getattr(exc, "reason", None) or user_message(exc)
            self.log.error(
                "mlwidget: model %r from the server config could not be created: %s",
                name,
                user_message(exc),
                exc_info=not isinstance(exc, MLWidgetError),
            )
            raise
        self.host.remember(name, model)
        if job is None:
            self.failed.pop(name, None)
        return model, job

    def create_or_open(
        self, name: str, options: dict, base_dir: str | None, existed: bool
    ) -> tuple[MLModel, bool]:
        """The model, adopted, and whether it needs its first fit now."""
        host = self.host
        kwargs: dict[str, Any] = {"store": host.store_dir, "allowed_classes": host.allowed_classes}
        source = datasets.worker_source(options.get("data"), base_dir)
        if source is not None:  # workers read it: the model is made without its rows
            # named "<model>.data" among the sources, with its storage options, for retrains
            source = datasets.add(f"{name}.data", source)
            self.sources[name] = source
            model = MLModel(name, base_dir=base_dir, **kwargs, **dict(options, data=None))
            stored = (host.store.read_state(name)[0] if existed else None) or {}
            return host.adopt(model), not stored.get("model") and "versions" not in stored
        plan = None if existed else deferred_fit(options, base_dir)
        if plan is None:  # opened as stored, or created with nothing to train
            model = MLModel(name, base_dir=base_dir, **kwargs, **options)
            state = host.store.read_state(name)[0] if existed else None
            return host.adopt(model), bool(state and never_fit(state))
        create, changes = plan
        model = MLModel(name, base_dir=base_dir, **kwargs, **create)
        model.configure(changes)  # as MLModel(...) stores them; a bad class or param raises
        return host.adopt(model), True

    def start_job(self, name: str, model: MLModel, created: bool) -> Job:
        """Start the first fit of ``model`` on the runner; while its queue is full, wait for
        another job to end."""
        while True:
            try:
                job = model.start_retrain(self.sources.get(name))
                break
            except TooManyJobs:  # the server's own work: it waits for room, never refused
                running = [j.future for j in model.runner.active()]
                if not running:
                    raise
                concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
        self.training[name] = job
        self.created[job.id] = created
        self.log.info("mlwidget: model %r from the server config trains as job %s", name, job.id)
        job.future.add_done_callback(lambda _: self.settle(name, job))
        return job

    def settle(self, name: str, job: Job) -> None:
        """Once, after a start-up job ended: a failure (or cancel) becomes the model's error,
        and a model this start created is removed (the next start tries again)."""
        with self.settle_lock:
            if not job.done or job.id not in self.created:
                return
            created = self.created.pop(job.id)
            if job.status == "done":
                self.failed.pop(name, None)
                self.log.info("mlwidget: model %r from the server config is trained", name)
                return
            if created:  # removed before the failure shows, so whoever sees it sees no model
                self.host.forget(name)
                with contextlib.suppress(Exception):
                    self.host.store.remove(name)
            self.failed[name] = job.error or f"Its first fit was {job.status}."
        self.log.log(
            logging.INFO if self.closing else logging.ERROR,
            "mlwidget: model %r from the server config was not trained (job %s %s): %s",
            name,
            job.id,
            job.status,
            job.error,
        )

    def training_job(self, name: str) -> Job | None:
        """The start-up job of ``name`` while it runs (or is queued), else None."""
        job = self.training.get(name)
        return job if job is not None and not job.done else None

    def creating(self, name: str) -> bool:
        """Whether the configured model ``name`` is being created (before its job)."""
        pending = self.pending.get(name)
        return pending is not None and not pending.done()

    def starting(self, name: str) -> Training | None:
        """The 503 for ``name`` while it is created or trained at start-up, else None."""
        if self.creating(name):
            return training_error(name, None)
        job = self.training_job(name)
        return None if job is None else training_error(name, job)

    async def created_by_now(self, name: str) -> None:
        """Wait until the configured model ``name``, if it is one, has been created (or has
        failed to be: its failure is recorded)."""
        pending = self.pending.get(name)
        if pending is not None:
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(pending)

    async def trained_by_now(self, name: str) -> None:
        """A request to a model in its start-up training waits for it (``training_wait`` at
        most), then 503; ``?_job`` and ``?_jobs`` (following or cancelling that job) go on at
        once. The request is read from Jupyter's call context (the handler it runs for)."""
        job = self.training_job(name)
        if job is None:
            return
        args = request_args()
        if "_job" in args or "_jobs" in args:
            return
        wait = self.host.training_wait
        if wait > 0:
            with contextlib.suppress(Exception):  # a timeout; the job's failure is settled
                await asyncio.wait_for(asyncio.wrap_future(job.future), wait)
        if not job.done:
            raise training_error(name, job)
        self.settle(name, job)

    def shutdown(self) -> None:
        """Stop creating models; a start-up job cancelled from now on is no error."""
        self.closing = True
        self.pool.shutdown(wait=False, cancel_futures=True)


def training_error(name: str, job: Job | None) -> Training:
    if job is None:
        return Training(
            f"Model {name!r} is being created from the server config. GET mlhandler/ shows "
            "its state."
        )
    done = f", {job.overall:.0%} done" if job.overall else ""
    error = Training(
        f"Model {name!r} is training: job {job.id} ({job.status}, stage {job.stage}{done}). "
        f"It answers once that job is done; GET ?_job={job.id} follows it, and "
        f"DELETE ?_job={job.id} cancels it."
    )
    error.job = job.id  # type: ignore[attr-defined]  # REST adds it to the answer
    return error


def deferred_fit(options: Mapping[str, Any], base_dir: str | None) -> tuple[dict, dict] | None:
    """For a new configured model that ``MLModel(name, **options)`` would train at once: the
    options to create it with untrained (its data, column options, Gramex keys: all that
    ``MLModel`` keeps of them), and the changes that then stage its class, target, params and
    path as ``MLModel`` would. None when it would not train (no data, no class and no target,
    or a ``path`` whose fitted model it brings in)."""
    flat, params, _ = opt.split(options)
    if flat.get("data") is None or not (flat.get("class") or flat.get("target_col")):
        return None
    path = opt.clean({"path": flat["path"]}, base_dir)["path"] if flat.get("path") else None
    if path and os.path.isfile(path) and not flat.get("class"):
        return None  # MLModel brings that file in, untrained by it
    staged = {"class": flat.get("class"), "target_col": flat.get("target_col"), "path": path}
    changes = {k: v for k, v in staged.items() if v is not None}
    if params:
        changes["params"] = params
    return _without_training(options, top=True), changes


def _without_training(raw: Mapping[str, Any], top: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = opt.ALIASES.get(key, key)
        if top and name == "model" and isinstance(value, Mapping):
            out[key] = _without_training(value, top=False)
        elif opt.is_option(key) and name != "model" and name not in TRAINING_KEYS:
            out[key] = value
    return out


def never_fit(state: Mapping[str, Any]) -> bool:
    """A stored model that was never fit and would have been at its creation (a start that
    stopped before its first fit ended): data and a class or a target, no fitted model, no
    versions (a deleted fit leaves an empty list: it is not trained again)."""
    options = state.get("options") or {}
    return (
        "versions" not in state
        and not state.get("model")
        and bool(state.get("data"))
        and bool(options.get("class") or options.get("target_col"))
    )


def request_args() -> dict[str, list[str]]:
    """The query of the request being served (Jupyter's call context), else nothing."""
    from jupyter_server import CallContext

    request = getattr(CallContext.get(CallContext.JUPYTER_HANDLER), "request", None)
    if request is None:
        return {}
    return {
        key: [v.decode("utf-8", "replace") for v in values]
        for key, values in request.query_arguments.items()
    }


def user_message(exc: BaseException) -> str:
    """A user-facing message: MLWidgetError text as is, anything else only by its type."""
    if isinstance(exc, MLWidgetError):
        return str(exc)
    return f"{type(exc).__name__} (see the server log)"
