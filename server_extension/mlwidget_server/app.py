"""``MLWidgetApp``: the extension's configuration, model registry and worker threads."""

from __future__ import annotations

import os

from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, Float, Int, List, Unicode, default

from mlwidget import datasets, limits
from mlwidget.jobs import ENV_CLUSTER, Runner, resolve
from mlwidget.store import default_root, safe_name

from . import hub_auth, v2
from .handlers import ModelHandler, ModelListHandler
from .registry import Registry
from .startup import user_message


class MLWidgetApp(ExtensionApp):
    """Serve the models of an mlwidget store with Gramex's MLHandler API."""

    name = "mlwidget"
    load_other_extensions = True
    limits_before: limits.Limits | None = None  # the process's limits before this server's
    sources_before: datasets.Naming | None = None  # and its names of sources

    models = Dict(
        key_trait=Unicode(),
        value_trait=Dict(),
        config=True,
        help="""Models to create when the server starts: name -> options (the same option names
        as ``MLModel``: data, class, params, target_col, include, exclude, cats, nums, dropna,
        deduplicate, path, template; flat or nested under ``model``). Relative paths are relative
        to the server's root directory. A model that already exists in the store is opened as
        stored, not overwritten. Each is served at ``{base_url}mlhandler/{name}``. A new model
        with data and a class (or a target) trains as a job, as a retrain does (``executor``,
        ``job_timeout``, ``job_memory``); the server answers meanwhile.""",
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
    cv_folds = Int(
        config=True,
        help="""Folds of the cross-validation that gives each fit its ``cv_score``, run as a job
        after the fit commits (0: none). A model's own ``cv_folds`` option comes first.
        Default: $MLWIDGET_CV_FOLDS, else 5.""",
    )
    cv_seconds = Float(
        20.0,
        config=True,
        help="""A retrain's cross-validation (cv_score) is skipped, with a warning, when its folds
        would take longer than this many seconds, judged by the fit's own time.""",
    )
    cv_max_rows = Int(
        100_000,
        config=True,
        help="""A retrain's cross-validation (cv_score) is skipped, with a warning, for more
        training rows than this.""",
    )
    max_explain_rows = Int(
        100,
        config=True,
        help="""Most rows one explanation request (?_action=explain) may explain; more is 413.""",
    )
    lock_wait = Float(
        600.0,
        config=True,
        help="""Seconds a write (retrain, append, PUT, DELETE) waits for another change to the
        same model to finish before it answers 409. Waiting happens on the event loop, not in a
        worker thread, so other requests keep answering meanwhile.""",
    )
    max_workers = Int(
        4,
        config=True,
        help="""Worker threads that run predictions and store access off the server's event
        loop; also the most jobs (retrain, and score or predictions with ``_wait=false``) that
        run at once (worker processes of the ``process`` executor, started on demand).""",
    )
    executor = Unicode(
        "",
        config=True,
        help="""Where jobs run: ``process`` (worker processes beside the server; a cancelled or
        timed-out job's worker is killed), ``thread`` (threads of the server: for tiny models
        and tests; cancel takes effect between a forest's trees or boosting stages only) or
        ``dask`` (a Dask cluster, at ``dask_scheduler``). Default: $MLWIDGET_EXECUTOR, else
        ``dask`` if a scheduler is set, else ``process``.""",
    )
    dask_scheduler = Unicode(
        "",
        config=True,
        help="""Address of the Dask scheduler (``tcp://host:port``) for ``executor="dask"``.
        Default: $MLWIDGET_DASK_SCHEDULER. Its workers need mlwidget and the same versions of
        scikit-learn, pandas and numpy as the server.""",
    )
    dask_cluster = Unicode(
        "",
        config=True,
        help="""Import path (``package.module:callable``) of a function returning a
        ``distributed.Client`` or a Dask cluster object (Dask Gateway, dask-kubernetes, a
        ``Client`` with a TLS ``Security``), used instead of ``dask_scheduler``; implies
        ``executor="dask"``. Called on the first job; when its client closes (the scheduler went
        away) a new one connects to the same cluster. Default: $MLWIDGET_DASK_CLUSTER.""",
    )
    dask_worker_wait = Float(
        60.0,
        config=True,
        help="""Seconds a job on Dask waits for the cluster to have a worker (an autoscaler may
        be starting one) before it fails with 503 "No Dask workers", naming the scheduler.""",
    )
    data_sources = Dict(
        key_trait=Unicode(),
        config=True,
        help="""Sources that workers read themselves, by name: a url (a Parquet or CSV file,
        folder or glob; a local or shared path or any fsspec URL such as ``s3://bucket/sales/``)
        or ``{"url": ..., "format": "parquet"|"csv", "storage_options": {...}}``. Requests
        name them (``?_action=retrain&source=NAME``, ``?_action=predict&source=NAME&output=NAME``),
        never a path or a URL (403). An output is a folder each job writes a new folder of
        Parquet partitions into. Also from $MLWIDGET_DATA_SOURCES (JSON).""",
    )
    cors_origins = List(
        Unicode(),
        config=True,
        help="""Origins of web apps (``https://app.example.com``) that may call mlwidget's REST
        routes from a browser (CORS), with a key or token in the Authorization header (never a
        cookie); ``*``: any origin. A key may add its own (``origins=``). Default: none (same
        origin only).""",
    )
    job_timeout = Float(
        0.0,
        config=True,
        help="""Seconds a job may run before it is stopped (its worker killed) and fails with
        408; nothing is stored. 0: no limit.""",
    )
    job_memory = Int(
        0,
        config=True,
        help="""Most memory (bytes of address space) a ``process`` worker may use; a job that
        needs more fails with 413 and leaves the server untouched. 0: no limit.""",
    )
    max_loaded_models = Int(
        20,
        config=True,
        help="""Most models the server keeps open (their fitted pipelines, compiled fast paths
        and data in memory). Opening one more releases the least recently used one; it stays
        listed and loads again on its next request. Listing or describing a model never loads
        it; its first prediction does.""",
    )
    training_wait = Float(
        600.0,
        config=True,
        help="""Seconds a request to a configured model still in its start-up training waits
        for that job (on the event loop, holding no worker thread) before it answers 503 naming
        the job. 0: answer 503 at once. ``?_job`` and ``?_jobs`` (to follow or cancel that job),
        the listing and V2 ``ready`` never wait.""",
    )
    max_queued = Int(
        16,
        config=True,
        help="""Jobs that may wait for a free worker beyond the ``max_workers`` running; past
        that a new job gets 429.""",
    )

    @default("cv_folds")
    def _default_cv_folds(self) -> int:
        return limits.folds_from_environment(lambda text: self.log.warning("mlwidget: %s", text))

    @default("store_dir")
    def _default_store_dir(self) -> str:
        return str(default_root())

    # ------------------------------------------------------------------ lifecycle

    def initialize_settings(self) -> None:
        # Every ceiling is a field of one limits.Limits, set from the traitlet of its name: the
        # server's process default while it runs (given back when it stops), and what each job
        # carries to where its work runs.
        self.limits_before = limits.current()
        configured = limits.configure(
            **{f: getattr(self, f) for f in limits.FIELDS if self.has_trait(f)}
        )
        self.log.debug("mlwidget: %r", configured)
        self.sources_before = datasets.current_naming()
        sources = datasets.configure(self.data_sources or datasets.from_environment())
        if sources:
            self.log.info("mlwidget: data sources %s", ", ".join(sorted(sources)))
        cluster = self.dask_cluster or os.environ.get(ENV_CLUSTER) or None
        executor, scheduler = resolve(
            self.executor or None, self.dask_scheduler or None, "process", cluster
        )
        runner = Runner(
            executor,
            max_workers=self.max_workers,
            job_timeout=self.job_timeout or None,
            max_queued=self.max_queued,
            job_memory=self.job_memory or None,
            dask_scheduler=scheduler,
            dask_cluster=cluster if executor == "dask" else None,
            dask_worker_wait=self.dask_worker_wait,
        )
        self.log.info("mlwidget: jobs run on %r", runner)
        self.registry = Registry(
            self.store_dir,
            allowed_classes=tuple(self.allowed_classes),
            max_workers=self.max_workers,
            lock_wait=self.lock_wait,
            log=self.log,
            runner=runner,
            max_loaded_models=self.max_loaded_models,
            training_wait=self.training_wait,
        )
        self.registry.cors_origins = tuple(self.cors_origins)
        # name -> (options, folder that relative paths in the options are relative to)
        specs: dict[str, tuple[dict, str | None]] = {}
        if self.config_yaml:
            specs.update(self._yaml_specs())
        root_dir = self.serverapp.root_dir if self.serverapp is not None else os.getcwd()
        for raw_name, options in self.models.items():
            name = safe_name(raw_name)
            if name in specs:
                self.log.warning("mlwidget: model %r in `models` replaces the YAML entry", name)
            specs[name] = (dict(options), root_dir)
        self.registry.configure_models(specs)
        hub_auth.install(self)  # with the HubAuthorizer: its guard (docs/sharing.md)
        self.log.info(
            "mlwidget: serving the model store at %s (%d configured models)",
            self.store_dir,
            len(specs),
        )

    def initialize_handlers(self) -> None:
        deps = {"registry": self.registry}
        self.handlers.extend(
            [
                *v2.routes(deps),  # the Open Inference Protocol, before the model routes
                (r"mlhandler/?", ModelListHandler, deps),
                (r"mlhandler/([^/]+)/?", ModelHandler, deps),
            ]
        )
        for pattern, name in self.registry.routes:
            self.handlers.append((pattern.lstrip("/"), ModelHandler, {**deps, "model_name": name}))

    async def stop_extension(self) -> None:
        self.registry.shutdown()
        # the process's own limits and sources again: a kernel or test process that ran this
        # server goes on under its defaults, not under the server's ceilings and names
        if self.limits_before is not None:
            limits.configure(self.limits_before)
        if self.sources_before is not None:
            datasets.restore(self.sources_before)

    # ------------------------------------------------------------------ configured models

    def _yaml_specs(self) -> dict[str, tuple[dict, str | None]]:
        from mlwidget.options import load_yaml

        root_dir = self.serverapp.root_dir if self.serverapp is not None else None
        try:
            entries = load_yaml(self.config_yaml, root_dir=root_dir)
        except Exception as exc:  # a bad YAML file must not stop the server
            self.log.error("mlwidget: config_yaml could not be loaded: %s", user_message(exc))
            return {}
        specs = {}
        for entry in entries:
            name = entry["name"]
            specs[name] = (dict(entry.get("options") or {}), entry.get("base_dir"))
            pattern = entry.get("pattern")
            if pattern:
                self.registry.routes.append((pattern, name))
        return specs
