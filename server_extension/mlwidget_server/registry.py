"""The models a server serves: a cache of ``MLModel``s over the store, the worker threads that
run core calls off the event loop, and the configured models created at startup.

``MLWidgetApp`` builds one registry from its traitlets and hands it to every handler through
``initialize()``; handlers never reach into the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import tempfile
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from mlwidget import MLModel, MLWidgetError, NotFound, limits
from mlwidget.errors import Busy, Conflict
from mlwidget.jobs import Runner
from mlwidget.store import Store, check_name

from .workers import WorkerPool  # daemon threads: a running fit never delays exit

T = TypeVar("T")


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
    ) -> None:
        self.store_dir = store_dir
        self.allowed_classes = tuple(allowed_classes)
        self._max_body_size = max_body_size
        self.lock_wait = lock_wait
        self.log = log or logging.getLogger("mlwidget.server")
        self.executor = WorkerPool(max_workers=max(2, max_workers), thread_name_prefix="mlwidget")
        # where jobs (retrain; score and predictions with _wait=false) run: worker processes
        # by default, so a fit never holds the server's threads, CPU time or memory
        self.runner = runner or Runner("process", max_workers=max_workers)
        self.configured: dict[str, tuple[dict, str | None]] = {}
        # (pattern, name) for YAML models served at their own URL
        self.routes: list[tuple[str, str]] = []
        self._cache: dict[str, MLModel] = {}
        self._pending: dict[str, Future] = {}
        self._failed: dict[str, str] = {}

    @property
    def max_body_size(self) -> int:
        """Bytes a request body may have: ``limits.current().max_body_size`` (the server's
        ``MLWidgetApp.max_body_size``), unless this registry was given its own."""
        if self._max_body_size is not None:
            return self._max_body_size
        return limits.current().max_body_size

    # ------------------------------------------------------------------ configured models

    def configure_models(self, specs: dict[str, tuple[dict, str | None]]) -> None:
        """Create (or open) each configured model on the workers; requests for one wait."""
        self.configured.update(specs)
        for name, (options, base_dir) in specs.items():
            self._pending[name] = self.executor.submit(
                self.create_configured, name, options, base_dir
            )

    def create_configured(self, name: str, options: dict, base_dir: str | None) -> MLModel:
        """Create or open a configured model. If it fails, nothing half-made stays in the store
        (the next start tries again) and the error shows in the listing and ``?_model``."""
        existed = Store(self.store_dir).exists(name)
        try:
            model = MLModel(
                name,
                store=self.store_dir,
                allowed_classes=self.allowed_classes,
                base_dir=base_dir,
                **options,
            )
        except Exception as exc:
            self._failed[name] = user_message(exc)
            if not existed:
                with contextlib.suppress(Exception):
                    Store(self.store_dir).remove(name)
                self._failed[name] = getattr(exc, "reason", None) or user_message(exc)
            self.log.error(
                "mlwidget: model %r from the server config could not be created: %s",
                name,
                user_message(exc),
                exc_info=not isinstance(exc, MLWidgetError),
            )
            raise
        self._adopt(model)
        self._cache[name] = model
        self._failed.pop(name, None)
        return model

    def _adopt(self, model: MLModel) -> MLModel:
        """A model this server serves: its jobs run on the server's runner, and a write that
        finds it busy raises at once (``run`` waits on the event loop instead)."""
        model.lock_timeout = 0
        model.runner = self.runner
        return model

    def failure(self, name: str) -> str | None:
        """Why the configured model ``name`` could not be created, if it could not."""
        return self._failed.get(name)

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
        """The model called ``name``: cached, else opened from the store (NotFound if absent)."""
        check_name(name)
        pending = self._pending.get(name)
        if pending is not None:
            with contextlib.suppress(Exception):  # reported below if the store has none either
                await asyncio.wrap_future(pending)
        model = self._cache.get(name)
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
        return self._cache.setdefault(name, model)

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
            self._cache.setdefault(name, model)
            return info

        return await self.run(create)

    def model_names(self) -> list[str]:
        try:
            names = set(Store(self.store_dir).names())
        except OSError:
            names = set()
        return sorted(names | set(self.configured))

    def shutdown(self) -> None:
        # Jobs are cancelled and their worker processes killed (nothing is committed); queued
        # thread work is cancelled, and a running call is abandoned: the threads are daemons.
        self.runner.shutdown()
        self.executor.shutdown(wait=False, cancel_futures=True)


def user_message(exc: BaseException) -> str:
    """A user-facing message: MLWidgetError text as is, anything else only by its type."""
    if isinstance(exc, MLWidgetError):
        return str(exc)
    return f"{type(exc).__name__} (see the server log)"
