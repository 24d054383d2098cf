"""``MLWidgetApp``: the extension's configuration, model registry and worker threads."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, Int, List, Unicode, default

from mlwidget import MLModel, MLWidgetError, NotFound, limits, tables
from mlwidget.store import Store, check_name, default_root, safe_name

from .handlers import ModelHandler, ModelListHandler
from .workers import WorkerPool  # daemon threads: a running fit never delays exit

T = TypeVar("T")


class MLWidgetApp(ExtensionApp):
    """Serve the models of an mlwidget store with Gramex's MLHandler API."""

    name = "mlwidget"
    load_other_extensions = True

    models = Dict(
        key_trait=Unicode(),
        value_trait=Dict(),
        config=True,
        help="""Models to create when the server starts: name -> options (the same option names
        as ``MLModel``: data, class, params, target_col, include, exclude, cats, nums, dropna,
        deduplicate, path, template; flat or nested under ``model``). Relative paths are relative
        to the server's root directory. A model that already exists in the store is opened as
        stored, not overwritten. Each is served at ``{base_url}mlhandler/{name}``.""",
    )
    config_yaml = Unicode(
        "",
        config=True,
        help="""Path of a Gramex-style YAML file (``url:`` entries with ``handler: MLHandler``).
        Each MLHandler entry becomes a model named after its key and is served at its
        ``pattern`` (under base_url) as well as at ``{base_url}mlhandler/{name}``.
        ``$YAMLPATH`` is the file's folder, ``$YAMLURL`` that folder relative to the root dir.""",
    )
    store_dir = Unicode(
        config=True,
        help="""Folder of the model store shared with kernels. Default: $MLWIDGET_STORE if set,
        else ``<jupyter data dir>/mlwidget/models`` (the same default ``MLModel`` uses).""",
    )
    allowed_classes = List(
        Unicode(),
        config=True,
        help="""Dotted paths of extra estimator classes that models may use (for example
        ``xgboost.XGBClassifier``). scikit-learn's own estimators are always allowed.""",
    )
    max_body_size = Int(
        256 * 1024 * 1024,
        config=True,
        help="""Largest request body (or upload) accepted, in bytes. Larger requests get 413
        before their body is read.""",
    )
    max_table_cells = Int(
        50_000_000,
        config=True,
        help="""Largest table (rows x columns) read from a request body or upload; bigger is 413.
        An XLSX sheet's or a Parquet file's extent is checked before it is unpacked.""",
    )
    max_categories = Int(
        100,
        config=True,
        help="""Most one-hot columns a categorical feature gets when a model trains: rarer values
        are grouped as one infrequent category, with a warning in the model info. Bounds the
        memory a column of many distinct values (names, ids) costs.""",
    )
    max_matrix_cells = Int(
        200_000_000,
        config=True,
        help="""Largest training matrix (rows x encoded columns; 8 bytes a cell) a fit may
        build; a bigger one is refused with 413 before it is built.""",
    )
    max_workers = Int(
        4,
        config=True,
        help="""Worker threads that run training, predictions and store access off the
        server's event loop.""",
    )

    @default("store_dir")
    def _default_store_dir(self) -> str:
        return str(default_root())

    # ------------------------------------------------------------------ lifecycle

    def initialize_settings(self) -> None:
        limits.configure(MAX_CATEGORIES=self.max_categories, MAX_MATRIX_CELLS=self.max_matrix_cells)
        tables.set_limits(max_cells=self.max_table_cells)

        self.executor = WorkerPool(
            max_workers=max(2, self.max_workers), thread_name_prefix="mlwidget"
        )
        self._cache: dict[str, MLModel] = {}
        self._pending: dict[str, Future] = {}
        self._failed: dict[str, str] = {}
        # (pattern, name) for YAML models served at their own URL
        self.routes: list[tuple[str, str]] = []
        # name -> (options, folder that relative paths in the options are relative to)
        specs: dict[str, tuple[dict, str]] = {}
        if self.config_yaml:
            specs.update(self._yaml_specs())
        root_dir = self.serverapp.root_dir if self.serverapp is not None else os.getcwd()
        for raw_name, options in self.models.items():
            name = safe_name(raw_name)
            if name in specs:
                self.log.warning("mlwidget: model %r in `models` replaces the YAML entry", name)
            specs[name] = (dict(options), root_dir)
        self.configured = specs
        for name, (options, base_dir) in specs.items():
            self._pending[name] = self.executor.submit(self._create, name, options, base_dir)
        self.log.info(
            "mlwidget: serving the model store at %s (%d configured models)",
            self.store_dir,
            len(specs),
        )

    def initialize_handlers(self) -> None:
        self.handlers.extend(
            [
                (r"mlhandler/?", ModelListHandler),
                (r"mlhandler/([^/]+)/?", ModelHandler),
            ]
        )
        for pattern, name in self.routes:
            self.handlers.append((pattern.lstrip("/"), ModelHandler, {"model_name": name}))

    async def stop_extension(self) -> None:
        # Queued work is cancelled; a running fit cannot be interrupted, and is abandoned: the
        # workers are daemon threads, so the server exits once its own shutdown is done.
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ configured models

    def _yaml_specs(self) -> dict[str, tuple[dict, str]]:
        from mlwidget.options import load_yaml

        root_dir = self.serverapp.root_dir if self.serverapp is not None else None
        try:
            entries = load_yaml(self.config_yaml, root_dir=root_dir)
        except Exception as exc:  # a bad YAML file must not stop the server
            self.log.error("mlwidget: config_yaml could not be loaded: %s", _message(exc))
            return {}
        specs = {}
        for entry in entries:
            name = entry["name"]
            specs[name] = (dict(entry.get("options") or {}), entry.get("base_dir"))
            pattern = entry.get("pattern")
            if pattern:
                self.routes.append((pattern, name))
        return specs

    def _create(self, name: str, options: dict, base_dir: str | None) -> MLModel:
        existed = Store(self.store_dir).exists(name)
        try:
            model = MLModel(
                name,
                store=self.store_dir,
                allowed_classes=self._allowed,
                base_dir=base_dir,
                **options,
            )
        except Exception as exc:
            self._failed[name] = _message(exc)
            if not existed:  # nothing half-made stays behind: the next start tries again
                with contextlib.suppress(Exception):
                    Store(self.store_dir).remove(name)
                self._failed[name] = getattr(exc, "reason", None) or _message(exc)
            self.log.error(
                "mlwidget: model %r from the server config could not be created: %s",
                name,
                _message(exc),
                exc_info=not isinstance(exc, MLWidgetError),
            )
            raise
        self._cache[name] = model
        self._failed.pop(name, None)
        return model

    # ------------------------------------------------------------------ for handlers

    @property
    def _allowed(self) -> tuple[str, ...]:
        return tuple(self.allowed_classes)

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func`` on the worker threads; the event loop keeps serving meanwhile."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(func, *args, **kwargs))

    async def get_model(self, name: str) -> MLModel:
        """The model called ``name``: cached, else opened from the store (NotFound if absent)."""
        check_name(name)
        pending = self._pending.get(name)
        if pending is not None:
            try:
                await asyncio.wrap_future(pending)
            except Exception:
                pass  # reported below if the store has no such model either
        model = self._cache.get(name)
        if model is not None:
            return model
        try:
            model = await self.run(
                MLModel.open, name, store=self.store_dir, allowed_classes=self._allowed
            )
        except NotFound:
            if name in self._failed:
                raise NotFound(
                    f"Model {name!r} could not be created from the server config: "
                    f"{self._failed[name]} Fix the config and restart the server."
                ) from None
            raise
        return self._cache.setdefault(name, model)

    async def create_model(self, name: str, changes: dict) -> dict:
        """Create the model ``name`` configured with ``changes`` (a PUT to a new name).
        If the changes are invalid, nothing is left in the store. Returns its info."""
        check_name(name)

        def create() -> dict:
            existed = Store(self.store_dir).exists(name)
            model = MLModel(name, store=self.store_dir, allowed_classes=self._allowed)
            try:
                info = model.configure(changes)
            except Exception:
                if not existed:
                    model.destroy()
                raise
            self._cache.setdefault(name, model)
            return info

        return await self.run(create)

    async def exists(self, name: str) -> bool:
        try:
            await self.get_model(name)
        except NotFound:
            return False
        return True

    def model_names(self) -> list[str]:
        try:
            names = set(Store(self.store_dir).names())
        except OSError:
            names = set()
        return sorted(names | set(self.configured))


def _message(exc: BaseException) -> str:
    """A user-facing message: MLWidgetError text as is, anything else only by its type."""
    if isinstance(exc, MLWidgetError):
        return str(exc)
    return f"{type(exc).__name__} (see the server log)"
