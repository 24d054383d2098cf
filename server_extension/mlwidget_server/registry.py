"""The models a server serves: a bounded cache of opened ``MLModel``s over the store, the worker
threads that run core calls off the event loop, and the configured models, created at startup
and trained as jobs.

``MLWidgetApp`` builds one registry from its traitlets and hands it to every handler through
``initialize()``; handlers never reach into the app.

Opened models are kept in a least-recently-used cache of ``max_loaded_models``: opening one
more releases the least recently used one (its pipeline, compiled fast path and data go with
it); that model stays listed, and its next request opens and loads it again. Looking at models
never loads them: the listing reads each one's stored state, and ``info()`` says what is stored
and whether this process holds the pipeline. The first prediction loads and compiles it.

A configured model that is new is created untrained (its options and data committed, one
model after another on a thread of its own) and trained by a retrain job on the server's
runner: in a worker process by default, within ``job_timeout`` and ``job_memory``,
cancellable with ``DELETE ?_job=ID``. The server answers meanwhile, and the listing shows the
model ``training`` with its job. A request to it waits for that job (on the event loop, as a
request that starts a job waits for it by default) for ``training_wait`` seconds at most (0: not
at all), then answers 503 naming the job; ``?_job`` and ``?_jobs`` answer at once. A failed or cancelled start-up training is shown as the model's
error, and a model this start created is removed then: the next start tries again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from mlwidget import MLModel, MLWidgetError, NotFound, limits
from mlwidget import options as opt
from mlwidget.errors import Busy, Conflict
from mlwidget.jobs import Job, Runner, TooManyJobs
from mlwidget.store import Store, check_name

from .workers import WorkerPool  # daemon threads: a running fit never delays exit

T = TypeVar("T")
# What MLModel(...) trains a new model from: a configured model that would train is created
# without these, then configured with them and trained by a job.
TRAINING_KEYS = ("class", "target_col", "path", "params")


class Training(MLWidgetError):
    """The model is in its start-up training (503); the answer names the job."""

    status = 503


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


class Registry:
    """Models by name, created or opened once per server, and the workers that run them."""

    def __init__(
        self,
        store_dir: str,
        allowed_classes: tuple[str, ...] = (),
        max_workers: int = 4,
        max_body_size: int | None = None,
        lock_wait: float = 600.0,
        log: logging.Logger | None = None,
        runner: Runner | None = None,
        max_loaded_models: int = 20,
        training_wait: float = 600.0,
    ) -> None:
        self.store_dir = store_dir
        self.store = Store(store_dir)
        self.allowed_classes = tuple(allowed_classes)
        self._max_body_size = max_body_size
        self.lock_wait = lock_wait
        self.training_wait = max(0.0, float(training_wait))
        self.max_loaded_models = max(1, int(max_loaded_models))
        self.log = log or logging.getLogger("mlwidget.server")
        self.executor = WorkerPool(max_workers=max(2, max_workers), thread_name_prefix="mlwidget")
        # configured models are created one after another here, never on the request threads
        self._startup = WorkerPool(max_workers=1, thread_name_prefix="mlwidget-startup")
        # where jobs (retrain; score and predictions with _wait=false) run: worker processes
        # by default, so a fit never holds the server's threads, CPU time or memory
        self.runner = runner or Runner("process", max_workers=max_workers)
        self.configured: dict[str, tuple[dict, str | None]] = {}
        # (pattern, name) for YAML models served at their own URL
        self.routes: list[tuple[str, str]] = []
        self._cache: OrderedDict[str, MLModel] = OrderedDict()  # least recently used first
        self._cache_lock = threading.Lock()
        self._pending: dict[str, Future] = {}  # configured models being created
        self._training: dict[str, Job] = {}  # each configured model's start-up job
        # start-up job id -> whether that start created the model; gone once the job's end
        # was dealt with (_settle)
        self._created: dict[str, bool] = {}
        self._settle_lock = threading.Lock()
        self._closing = False  # shutting down: a start-up job cancelled then is no error
        self._failed: dict[str, str] = {}

    @property
    def max_body_size(self) -> int:
        """Bytes a request body may have: ``limits.current().max_body_size`` (the server's
        ``MLWidgetApp.max_body_size``), unless this registry was given its own."""
        if self._max_body_size is not None:
            return self._max_body_size
        return limits.current().max_body_size

    # ------------------------------------------------------------------ the cache

    def _recall(self, name: str) -> MLModel | None:
        with self._cache_lock:
            model = self._cache.get(name)
            if model is not None:
                self._cache.move_to_end(name)
        self.log.debug("mlwidget: model cache %s: %r", "hit" if model else "miss", name)
        return model

    def _remember(self, name: str, model: MLModel) -> MLModel:
        """Cache ``model`` (or keep the one cached already) as the most recently used, and
        release the least recently used ones past ``max_loaded_models``."""
        evicted = []
        with self._cache_lock:
            model = self._cache.setdefault(name, model)
            self._cache.move_to_end(name)
            while len(self._cache) > self.max_loaded_models:
                evicted.append(self._cache.popitem(last=False))
        for old, victim in evicted:
            victim._snapshots.release()  # a request still using it keeps the snapshot it has
            self.log.debug("mlwidget: model cache eviction: %r (least recently used)", old)
        return model

    def _forget(self, name: str) -> None:
        with self._cache_lock:
            self._cache.pop(name, None)

    def loaded_count(self) -> int:
        """How many cached models hold their fitted pipeline in memory (at most
        ``max_loaded_models``)."""
        with self._cache_lock:
            models = list(self._cache.values())
        return sum(1 for m in models if m._snapshots.loaded)

    # ------------------------------------------------------------------ configured models

    def configure_models(self, specs: dict[str, tuple[dict, str | None]]) -> None:
        """Create (or open) each configured model on the start-up thread; those that need a
        fit get a retrain job. The server answers meanwhile."""
        self.configured.update(specs)
        for name, (options, base_dir) in specs.items():
            self._pending[name] = self._startup.submit(
                self.start_configured, name, options, base_dir
            )

    def create_configured(self, name: str, options: dict, base_dir: str | None) -> MLModel:
        """Create or open a configured model and wait for its training job, if it has one
        (raises the job's error once the failure is recorded)."""
        model, job = self.start_configured(name, options, base_dir)
        if job is not None:
            try:
                job.result()
            finally:
                self._settle(name, job)
        return model

    def start_configured(
        self, name: str, options: dict, base_dir: str | None
    ) -> tuple[MLModel, Job | None]:
        """Create or open a configured model, and start its first fit as a job if it needs
        one. If creating it fails, nothing half-made stays in the store (the next start tries
        again) and the error shows in the listing and ``?_model``."""
        existed = self.store.exists(name)
        try:
            model, start = self._create_or_open(name, options, base_dir, existed)
            job = self._start_job(name, model, created=not existed) if start else None
        except Exception as exc:
            self._failed[name] = getattr(exc, "reason", None) or user_message(exc)
            if not existed:
                with contextlib.suppress(Exception):
                    self.store.remove(name)
            self.log.error(
                "mlwidget: model %r from the server config could not be created: %s",
                name,
                user_message(exc),
                exc_info=not isinstance(exc, MLWidgetError),
            )
            raise
        self._remember(name, model)
        if job is None:
            self._failed.pop(name, None)
        return model, job

    def _create_or_open(
        self, name: str, options: dict, base_dir: str | None, existed: bool
    ) -> tuple[MLModel, bool]:
        """The model, adopted, and whether it needs its first fit now."""
        kwargs = {"store": self.store_dir, "allowed_classes": self.allowed_classes}
        plan = None if existed else deferred_fit(options, base_dir)
        if plan is None:  # opened as stored, or created with nothing to train
            model = MLModel(name, base_dir=base_dir, **kwargs, **options)
            state = self.store.read_state(name)[0] if existed else None
            return self._adopt(model), bool(state) and never_fit(state)
        create, changes = plan
        model = MLModel(name, base_dir=base_dir, **kwargs, **create)
        model.configure(changes)  # as MLModel(...) stores them; a bad class or param raises
        return self._adopt(model), True

    def _start_job(self, name: str, model: MLModel, created: bool) -> Job:
        """Start the first fit of ``model`` on the runner; while its queue is full, wait for
        another start-up job to end."""
        while True:
            try:
                job = model.start_retrain()
                break
            except TooManyJobs:
                running = [j.future for j in list(self._training.values()) if not j.done]
                if not running:
                    raise
                concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
        self._training[name] = job
        self._created[job.id] = created
        self.log.info("mlwidget: model %r from the server config trains as job %s", name, job.id)
        job.future.add_done_callback(lambda _: self._settle(name, job))
        return job

    def _settle(self, name: str, job: Job) -> None:
        """Once, after a start-up job ended: a failure (or cancel) becomes the model's error,
        and a model this start created is removed (the next start tries again)."""
        with self._settle_lock:
            if not job.done or job.id not in self._created:
                return
            created = self._created.pop(job.id)
            if job.status == "done":
                self._failed.pop(name, None)
                self.log.info("mlwidget: model %r from the server config is trained", name)
                return
            self._failed[name] = job.error or f"Its first fit was {job.status}."
            if created:
                self._forget(name)
                with contextlib.suppress(Exception):
                    self.store.remove(name)
        self.log.log(
            logging.INFO if self._closing else logging.ERROR,
            "mlwidget: model %r from the server config was not trained (job %s %s): %s",
            name,
            job.id,
            job.status,
            job.error,
        )

    def training_job(self, name: str) -> Job | None:
        """The start-up job of ``name`` while it runs (or is queued), else None."""
        job = self._training.get(name)
        return job if job is not None and not job.done else None

    def starting(self, name: str) -> Training | None:
        """The 503 for ``name`` while it is created or trained at start-up, else None."""
        if self.creating(name):
            return training_error(name, None)
        job = self.training_job(name)
        return None if job is None else training_error(name, job)

    async def _await_start(self, name: str) -> None:
        """A request to a model in its start-up training waits for it (``training_wait`` at
        most), then 503; ``?_job`` and ``?_jobs`` (following or cancelling that job) go on at
        once. The request is read from Jupyter's call context (the handler it runs for)."""
        job = self.training_job(name)
        if job is None:
            return
        args = request_args()
        if "_job" in args or "_jobs" in args:
            return
        if self.training_wait > 0:
            with contextlib.suppress(Exception):  # a timeout; the job's failure is settled
                await asyncio.wait_for(asyncio.wrap_future(job.future), self.training_wait)
        if not job.done:
            raise training_error(name, job)
        self._settle(name, job)

    def _adopt(self, model: MLModel) -> MLModel:
        """A model this server serves: its jobs run on the server's runner, and a write that
        finds it busy raises at once (``run`` waits on the event loop instead)."""
        model.lock_timeout = 0
        model.runner = self.runner
        return model

    def failure(self, name: str) -> str | None:
        """Why the configured model ``name`` could not be created, if it could not."""
        return self._failed.get(name)

    def cached(self, name: str) -> MLModel | None:
        """The cached model ``name``, if any, leaving the cache's order as it is."""
        with self._cache_lock:
            return self._cache.get(name)

    def creating(self, name: str) -> bool:
        """Whether the configured model ``name`` is being created (before its job)."""
        pending = self._pending.get(name)
        return pending is not None and not pending.done()

    # ------------------------------------------------------------------ for handlers

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func`` on the worker threads; the event loop keeps serving meanwhile.

        A write that finds the model busy (another change holds its lock) is tried again from
        the event loop, with backoff, for up to ``lock_wait`` seconds: waiting writers hold no
        worker thread, so other models and requests keep answering (then 409)."""
        loop = asyncio.get_running_loop()
        call = functools.partial(func, *args, **kwargs)
        deadline = loop.time() + self.lock_wait
        delay = 0.01
        while True:
            try:
                return await loop.run_in_executor(self.executor, call)
            except Busy as exc:
                if loop.time() + delay > deadline:
                    raise Conflict(
                        f"{exc} It was still busy after {self.lock_wait:.0f} s "
                        "(MLWidgetApp.lock_wait)."
                    ) from None
            await asyncio.sleep(delay)
            delay = min(2 * delay, 0.25)

    async def get_model(self, name: str) -> MLModel:
        """The model called ``name``: cached, else opened from the store (NotFound if absent).
        A configured model in its start-up training: see ``_await_start``."""
        check_name(name)
        pending = self._pending.get(name)
        if pending is not None:
            with contextlib.suppress(Exception):  # reported below if the store has none either
                await asyncio.wrap_future(pending)
        await self._await_start(name)
        model = self._recall(name)
        if model is not None:
            return model
        try:
            model = self._adopt(
                await self.run(
                    MLModel.open, name, store=self.store_dir, allowed_classes=self.allowed_classes
                )
            )
        except NotFound:
            if name in self._failed:
                raise NotFound(
                    f"Model {name!r} could not be created from the server config: "
                    f"{self._failed[name]} Fix the config and restart the server."
                ) from None
            raise
        return self._remember(name, model)

    async def create_model(self, name: str, changes: dict, only: bool = False) -> dict:
        """Create the model ``name`` configured with ``changes`` (a PUT to a new name; with
        ``only``, a ``PUT ?_create``: a model of that name is a Conflict naming it). A name that
        differs from an existing model's only by case or a trailing dot is a Conflict too. If
        anything is refused, the store is as it was. Returns its info."""
        check_name(name)
        pending = self._pending.get(name)
        if pending is not None:  # a configured model still being created counts as existing
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(pending)

        def create() -> dict:
            Store(self.store_dir).check_new(name, exact=only)  # 409 before the 400s below
            # Check the changes on a scratch copy first: a refused PUT leaves nothing behind
            # and never removes a model another request created meanwhile.
            with tempfile.TemporaryDirectory(prefix="mlwidget-check-") as scratch:
                MLModel(name, store=scratch, allowed_classes=self.allowed_classes).configure(
                    changes
                )
            model = self._adopt(
                MLModel(
                    name, store=self.store_dir, allowed_classes=self.allowed_classes, create=only
                )
            )
            info = model.configure(changes)
            self._remember(name, model)
            return info

        return await self.run(create)

    def model_names(self) -> list[str]:
        try:
            names = set(self.store.names())
        except OSError:
            names = set()
        return sorted(names | set(self.configured))

    def shutdown(self) -> None:
        # Jobs are cancelled and their worker processes killed (nothing is committed); queued
        # thread work is cancelled, and a running call is abandoned: the threads are daemons.
        self._closing = True
        self.runner.shutdown()
        self._startup.shutdown(wait=False, cancel_futures=True)
        self.executor.shutdown(wait=False, cancel_futures=True)


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
