"""The models a server serves: a bounded cache of opened ``MLModel``s over the store, the worker
threads that run core calls off the event loop, and the configured models (startup.py: created
at startup and trained as jobs).

``MLWidgetApp`` builds one registry from its traitlets and hands it to every handler through
``initialize()``; handlers never reach into the app.

Opened models are kept in a least-recently-used cache of ``max_loaded_models``: opening one
more releases the least recently used one (its pipeline, compiled fast path and data go with
it); that model stays listed, and its next request opens and loads it again. Looking at models
never loads them: the listing reads each one's stored state, and ``info()`` says what is stored
and whether this process holds the pipeline. The first prediction loads and compiles it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from mlwidget import MLModel, NotFound, limits
from mlwidget import state as state_
from mlwidget.errors import Busy, Conflict
from mlwidget.jobs import Job, Runner
from mlwidget.jobs.job_board import busy
from mlwidget.store import Store, check_name

from .startup import Startup, Training, user_message
from .workers import WorkerPool  # daemon threads: a running fit never delays exit

__all__ = ["Registry", "user_message"]  # user_message: pages.py imports it from here

T = TypeVar("T")

# Keys a PUT may carry that MLModel(...) takes as its own arguments, or that would make it
# train (data): a model created with them is created, then configured.
RESERVED_KEYS = set(inspect.signature(MLModel).parameters) - {"options"}


class Registry:
    """Models by name, created or opened once per server, and the workers that run them."""

    cors_origins: tuple[str, ...] = ()  # MLWidgetApp.cors_origins (cors.py)

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
        # where jobs (retrain; score and predictions with _wait=false) run: worker processes
        # by default, so a fit never holds the server's threads, CPU time or memory
        self.runner = runner or Runner("process", max_workers=max_workers)
        # (pattern, name) for YAML models served at their own URL
        self.routes: list[tuple[str, str]] = []
        self._cache: OrderedDict[str, MLModel] = OrderedDict()  # least recently used first
        self._cache_lock = threading.Lock()
        self.startup = Startup(self)  # the configured models
        # configured models deleted while this server runs: unlisted until a restart, when
        # the config creates (and trains) them again
        self.deleted: set[str] = set()

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

    def remember(self, name: str, model: MLModel) -> MLModel:
        """Cache ``model`` (or keep the one cached already) as the most recently used, and
        release the least recently used ones past ``max_loaded_models``."""
        evicted = []
        with self._cache_lock:
            model = self._cache.setdefault(name, model)
            self._cache.move_to_end(name)
            while len(self._cache) > self.max_loaded_models:
                evicted.append(self._cache.popitem(last=False))
        for old, victim in evicted:
            victim.release()  # a request still using it keeps the snapshot it has
            self.log.debug("mlwidget: model cache eviction: %r (least recently used)", old)
        return model

    def forget(self, name: str) -> None:
        """Drop ``name`` from the cache (its store entry is gone)."""
        with self._cache_lock:
            self._cache.pop(name, None)

    def cached(self, name: str) -> MLModel | None:
        """The cached model ``name``, if any, leaving the cache's order as it is."""
        with self._cache_lock:
            return self._cache.get(name)

    def loaded_count(self) -> int:
        """How many cached models hold their fitted pipeline in memory (at most
        ``max_loaded_models``)."""
        with self._cache_lock:
            models = list(self._cache.values())
        return sum(1 for m in models if m.loaded)

    def adopt(self, model: MLModel) -> MLModel:
        """A model this server serves: its jobs run on the server's runner, and a write that
        finds it busy raises at once (``run`` waits on the event loop instead)."""
        model.lock_timeout = 0
        model.runner = self.runner
        return model

    # ------------------------------------------------------------------ configured models

    @property
    def configured(self) -> dict[str, tuple[dict, str | None]]:
        """The models of the server config: name -> (options, folder of their relative paths)."""
        return self.startup.configured

    def configure_models(self, specs: dict[str, tuple[dict, str | None]]) -> None:
        """Create (or open) each configured model on the start-up thread (startup.py)."""
        self.startup.configure_models(specs)

    def create_configured(self, name: str, options: dict, base_dir: str | None) -> MLModel:
        """Create or open a configured model and wait for its training job, if it has one."""
        return self.startup.create_configured(name, options, base_dir)

    def failure(self, name: str) -> str | None:
        """Why the configured model ``name`` could not be created, if it could not."""
        return self.startup.failed.get(name)

    def creating(self, name: str) -> bool:
        """Whether the configured model ``name`` is being created (before its job)."""
        return self.startup.creating(name)

    def training_job(self, name: str) -> Job | None:
        """The start-up job of ``name`` while it runs (or is queued), else None."""
        return self.startup.training_job(name)

    def starting(self, name: str) -> Training | None:
        """The 503 for ``name`` while it is created or trained at start-up, else None."""
        return self.startup.starting(name)

    # ------------------------------------------------------------------ for handlers

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func`` on the worker threads; the event loop keeps serving meanwhile.

        A write that finds the model busy (another change holds its lock) is tried again from
        the event loop, with backoff, for up to ``lock_wait`` seconds: waiting writers hold no
        worker thread, so other models and requests keep answering (then 409)."""
        loop = asyncio.get_running_loop()
        # in this request's context: the audit's caller (access.ACTING) goes along
        call = functools.partial(
            contextvars.copy_context().run, functools.partial(func, *args, **kwargs)
        )
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
        A configured model in its start-up training: see ``Startup.trained_by_now``."""
        check_name(name)
        await self.startup.created_by_now(name)  # reported below if the store has none either
        await self.startup.trained_by_now(name)
        model = self._recall(name)
        if model is not None:
            return model
        try:
            model = self.adopt(
                await self.run(
                    MLModel.open, name, store=self.store_dir, allowed_classes=self.allowed_classes
                )
            )
        except NotFound:
            failure = self.failure(name)
            if failure is not None:
                raise NotFound(
                    f"Model {name!r} could not be created from the server config: "
                    f"{failure} Fix the config and restart the server."
                ) from None
            raise
        return self.remember(name, model)

    async def create_model(self, name: str, changes: dict, only: bool = False) -> dict:
        """Create the model ``name`` configured with ``changes`` (a PUT to a new name; with
        ``only``, a ``PUT ?_create``: a model of that name is a Conflict naming it). A name that
        differs from an existing model's only by case or a trailing dot is a Conflict too. If
        anything is refused, the store is as it was. Returns its info."""
        check_name(name)
        # a configured model still being created counts as existing
        await self.startup.created_by_now(name)

        def create() -> dict:
            Store(self.store_dir).check_new(name, exact=only)  # 409 before the 400s below
            if set(changes) & RESERVED_KEYS:  # configured, not trained: checked on a copy first
                with tempfile.TemporaryDirectory(prefix="mlwidget-check-") as scratch:
                    MLModel(name, store=scratch, allowed_classes=self.allowed_classes).configure(
                        changes
                    )
                model = MLModel(
                    name, store=self.store_dir, allowed_classes=self.allowed_classes, create=only
                )
                model.configure(changes)
            else:  # every option is checked before the one commit that creates the model
                state_.initial(dict(changes), None, self.allowed_classes)  # the 400s, first
                try:
                    model = MLModel(
                        name,
                        store=self.store_dir,
                        allowed_classes=self.allowed_classes,
                        create=True,
                        **changes,
                    )
                except Conflict:
                    if only or not self.store.exists(name):
                        raise
                    model = MLModel(
                        name, store=self.store_dir, allowed_classes=self.allowed_classes
                    )
                    model.configure(changes)  # created meanwhile by another request: changed
            self.remember(name, self.adopt(model))
            self.deleted.discard(name)  # made again: listed again
            return model.info()

        return await self.run(create)

    def model_names(self) -> list[str]:
        try:
            names = set(self.store.names())
        except OSError:
            names = set()
        return sorted(names | (set(self.configured) - self.deleted))

    async def delete_model(self, model: MLModel) -> dict:
        """Remove ``model`` entirely (``MLModel.delete``) and forget it: the listing no longer
        shows it and its URL answers 404. A configured model's start-up job still running is a
        409 naming it, as any job of the model is; nothing is removed then."""
        job = self.training_job(model.name)
        if job is not None and not job.done:
            raise busy(job)
        answer = await self.run(model.delete)
        self.forget(model.name)
        self.deleted.add(model.name)
        return answer

    def shutdown(self) -> None:
        # Jobs are cancelled and their worker processes killed (nothing is committed); queued
        # thread work is cancelled, and a running call is abandoned: the threads are daemons.
        self.startup.closing = True  # a start-up job cancelled from now on is no error
        self.runner.shutdown()
        self.startup.shutdown()
        self.executor.shutdown(wait=False, cancel_futures=True)
