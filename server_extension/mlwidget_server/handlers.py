"""The MLHandler HTTP API's two handlers and what each request method does: the listing
(``ModelListHandler``) and a model's API (``ModelHandler``: GET, POST, PUT, DELETE). Handlers
stay thin: parse the request, call ``MLModel``, answer. What they share is elsewhere: base.py
(authentication, errors, JSON), spooling.py (the body as it arrives), answers.py (tables,
predictions and downloads in a ``_format``), jobs_api.py (jobs), pages.py (the HTML pages).

Every core call runs on the registry's worker threads (``Registry.run``) so that large
predictions never block the Jupyter server's event loop; training (and, with ``_wait=false``,
scores and predictions) runs as a job on the registry's runner (mlwidget.jobs): in worker
processes by default, observable with ``?_job``, cancelled with ``DELETE ?_job``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler

from mlwidget import (
    BadRequest,
    Forbidden,
    NotFound,
    access,
    feedback_read,
    predicting,
    predlog_read,
)
from mlwidget.api import ACTIONS, CACHE_FORMATS, DELETE_ITEMS, LIST_ACTIONS, WRITE_ACTIONS

from . import (
    answers,
    importance_api,
    keys_api,
    monitor_api,
    predlog_api,
    search_api,
    source_requests,
    streaming,
)
from .bodies import clip, last, parse_body, put_changes, wants_wait
from .jobs_api import JobsMixin
from .pages import ListingMixin, PageMixin
from .spooling import SpoolingHandler

if TYPE_CHECKING:
    from mlwidget import MLModel, access

    from .registry import Registry


@tornado.web.stream_request_body
class ModelListHandler(ListingMixin, SpoolingHandler):
    """``GET {base_url}mlhandler/``: the models of the store and of the server config;
    ``POST ?_action=preview`` with a file: what a model made from it would be (stores nothing)."""

    async def admit(self) -> None:
        """Authenticated (see BaseHandler); before a POST's body is read: its size, and the
        ``write`` permission (a preview reads an upload, as a write does)."""
        caller = self.caller_access()
        if self.request.method != "POST":
            if not caller.is_owner and not caller.grants:  # a key or user with no role at all
                raise Forbidden(caller.refusal("viewer", "*", "Listing the models"))
            return
        self.limit_body()
        if caller.is_owner:
            await self.check_authorized("write")
        elif not any(access.rank(g.role) >= access.rank("trainer") for g in caller.grants):
            raise Forbidden(caller.refusal("trainer", "*", "A preview of a new model"))

    @tornado.web.authenticated
    async def post(self) -> None:
        args = self.query_args()
        action = last(args, "_action")
        if action not in LIST_ACTIONS:
            raise BadRequest(
                f"Expected _action={' or '.join(LIST_ACTIONS)} on the model listing, got "
                f"{clip(str(action))!r}. POST a file to ?_action=preview to see the model it "
                "would make; the other actions are on {base_url}mlhandler/{name}."
            )
        ctype = self.request.headers.get("Content-Type", "")
        await self.send_preview(self.body(), ctype, args)

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """The models and each one's state, read from the store (never opening, loading or
        training one): the listing page for a browser, else JSON (pages.py)."""
        await self.send_listing()


@tornado.web.stream_request_body
class ModelHandler(JobsMixin, PageMixin, SpoolingHandler):
    """``{base_url}mlhandler/{name}`` (and a YAML model's own pattern): the MLHandler API."""

    def initialize(  # type: ignore[override]
        self, name: str, registry: Registry, model_name: str | None = None
    ) -> None:
        super().initialize(name, registry)
        self.model_name = model_name
        self.mlmodel: MLModel | None = None

    @property
    def model(self) -> Any:
        """The fitted scikit-learn pipeline (``handler.model`` in templates), or None."""
        return self.mlmodel.pipeline if self.mlmodel is not None else None

    # ------------------------------------------------------------------ request body

    async def admit(self) -> None:
        """Authenticated (see BaseHandler); before the body is read: its size, and the
        permission its action needs."""
        self.limit_body()
        method, keys = self.request.method or "GET", list(self.request.query_arguments)
        action = self.get_query_argument("_action", None)
        role = access.needed(method, keys, action if method == "POST" else None)
        name = self.model_name or (self.path_args[0] if self.path_args else "")
        asked = f"_action={action}" if action else "&".join(k for k in keys if k.startswith("_"))
        what = f"{method}{' ?' + asked if asked else ''}"
        await self.require(role, str(name), what, self._auth_action())

    def get_login_url(self) -> str:
        """A browser opening the page without being logged in goes to Jupyter's login page
        (and comes back); API requests get 403 as usual."""
        keys = {
            key
            for key in self.request.query_arguments
            if not key.startswith("_xsrf") and key != "token"
        }
        api_page = keys == {"_openapi", "_format"} and self.get_query_argument("_format") == "html"
        page = self.request.method == "GET" and (not keys or api_page)
        if page and "text/html" in self.request.headers.get("Accept", ""):
            return JupyterHandler.get_login_url(self)
        return super().get_login_url()

    def _auth_action(self) -> str:
        method = self.request.method
        if method in ("GET", "HEAD"):
            # the model file is a pickle: only writers (who could replace it) may fetch it
            owners = ("_download", "_keys")  # a pickle; the keys of the model
            return "write" if any(k in self.request.query_arguments for k in owners) else "read"
        if method == "POST":
            action = self.get_query_argument("_action", "predict")
            return "write" if action in WRITE_ACTIONS else "read"
        return "write"

    # ------------------------------------------------------------------ helpers

    async def resolve(self, name: str | None) -> MLModel:
        self.mlmodel = await self.registry.get_model(self.model_name or name or "")
        return self.mlmodel

    # ------------------------------------------------------------------ GET

    @tornado.web.authenticated
    async def get(self, name: str | None = None, *_: str) -> None:
        args = self.query_args()
        m = await self.resolve(name)
        run = self.registry.run
        fmt = last(args, "_format")
        if "_job" in args or "_jobs" in args:
            await self.send_jobs(m, args)
        elif "_openapi" in args and fmt == "html":
            await self.render_api_page(m)  # the same document for humans (pages.py)
        elif "_openapi" in args:
            from .openapi import openapi_document

            info = await run(m.info)
            await self.send_json(openapi_document(info, self.base_url))
        elif "_keys" in args:
            await keys_api.send_keys(self, m)
        elif "_versions" in args:
            await self.send_json(await run(m.versions))
        elif "_log" in args:  # the prediction log (predlog_api.py)
            await predlog_api.send_records(self, m, args, predlog_read, "log")
        elif "_monitor" in args:  # drift, traffic, live metrics (monitor_api.py)
            await monitor_api.send_monitor(self, m, args)
        elif "_feedback" in args:  # the feedback records, as the log's (predlog_api.py)
            await predlog_api.send_records(self, m, args, feedback_read, "feedback")
        elif "_download" in args:
            await answers.send_download(self, m, args)
        elif "_model" in args:
            await self.send_json(await run(m.info))
        elif "_params" in args:
            await self.send_json(await run(m.params_info))
        elif "_cache" in args:
            df = await run(m.data)
            await answers.send_table(self, df, fmt or "json", f"{m.name}-data")
        elif last(args, "_action") == "explain":  # the query's rows, as a prediction reads them
            from mlwidget.tables import from_query

            rows, wanted = from_query(args), last(args, "_class")
            await self.send_json(await run(m.explain, rows, wanted))
        elif any(not key.startswith("_") for key in args):
            started = time.perf_counter()
            if fmt in (None, "", "json"):
                # A loaded, compiled model answers a few rows from memory in microseconds, on
                # the loop; anything else (loading, compiling, many rows, errors) on a worker.
                out = m.predict_query(args, fast_only=True)
                if out is not None:
                    predlog_api.mark(self, m, "get", args, out, started, kind="columns")
                    await self.send_json(out, quick=True)
                else:
                    out = await run(m.predict_query, args)
                    predlog_api.mark(self, m, "get", args, out, started, kind="columns")
                    await self.send_json(out)
            else:
                from mlwidget.tables import from_query

                await answers.send_predictions(self, m, from_query(args), fmt, "get", started)
        else:
            await self.render_page(m)

    # ------------------------------------------------------------------ POST

    @tornado.web.authenticated
    async def post(self, name: str | None = None, *_: str) -> None:
        args = self.query_args()
        action = last(args, "_action") or "predict"
        if action not in ACTIONS:
            raise BadRequest(
                f"Unknown _action {action!r}. Use one of: {', '.join(ACTIONS)} (default predict)."
            )
        m = await self.resolve(name)
        run = self.registry.run
        if action == "rollback":
            version = last(args, "version")
            if not version:
                raise BadRequest(
                    "_action=rollback needs the version to serve: ?_action=rollback&version=2 "
                    "(GET ?_versions lists them)."
                )
            await self.send_json(await run(m.rollback, version))
            return
        if action == "share":  # a new key on this model (the owner's: keys_api.py)
            await keys_api.share(self, m, args)
            return
        if action == "search":  # a JSON grid body or grid.<param> query keys (search_api.py)
            await search_api.answer(self, m, args)
            return
        if action == "importance":  # a job on the stored rows, nothing stored (importance_api)
            await importance_api.answer(self, m, args)
            return
        if action == "replay":  # a candidate version on the logged inputs (monitor_api.py)
            await monitor_api.replay(self, m, args)
            return
        if action == "feedback" or "from" in args:  # feedback, its labels (monitor_api.py)
            await monitor_api.answer(self, m, action, args)
            return
        metric = last(args, "_metric") or last(args, "metric") or None
        wait = wants_wait(args)
        ctype = self.request.headers.get("Content-Type", "")
        self.check_body_size()
        if source_requests.names_a_source(action, args):  # workers read the rows
            await source_requests.answer(self, m, action, args)
            return
        if action == "predict" and await streaming.answer_large(self, m, wait, args):
            return
        started = time.perf_counter()  # a logged prediction's latency (predlog_api.py)
        df = await run(parse_body, self.body(), ctype, args)
        if action in ("retrain", "train"):  # without rows: on the stored data
            target = last(args, "target_col") or last(args, "_target_col") or None
            job = await run(m.start_retrain, df, target_col=target, metric=metric)
            job.caller = self.caller()
            await self.answer_job(m, job, wait)
            return
        if df is None:  # the other actions: predict, predict_proba, score, append
            raise BadRequest(
                f"_action={action} needs rows in the request body: JSON records, CSV, XLSX or "
                "Parquet, or a multipart file upload."
            )
        if not wait and action in ("predict", "predict_proba", "score"):
            fmt = last(args, "_format")
            if fmt == "table":
                raise BadRequest(
                    "Expected _format=table without _wait=false (it answers at once); a job's "
                    "result is the rows with their predictions: use _format=records with it."
                )
            if action == "predict" and fmt not in (None, "", "json"):
                if fmt not in CACHE_FORMATS:
                    raise BadRequest(f"Unknown _format {fmt!r}. Use {', '.join(CACHE_FORMATS)}.")
                action = "predict_table"  # the rows with predictions, fetched as _format says
            job = await run(m.start_job, action, df, metric)
            job.caller, job.answer_format = self.caller(), fmt
            await self.answer_job(m, job, wait)
        elif action == "predict":
            await answers.send_predictions(self, m, df, last(args, "_format"), "post", started)
        elif action == "predict_proba":
            proba = await run(m.predict_proba, df)
            predlog_api.mark(self, m, "post", df, predicting.best_classes(proba), started, proba)
            await self.send_json(proba)
        elif action == "explain":  # class= (or _class=): explain that class, not the predicted
            wanted = last(args, "_class") or last(args, "class")
            await self.send_json(await run(m.explain, df, wanted))
        elif action == "score":
            await self.send_json(await run(m.score, df, metric=metric))
        else:
            await self.send_json(await run(m.append, df))

    # ------------------------------------------------------------------ PUT

    @tornado.web.authenticated
    async def put(self, name: str | None = None, *_: str) -> None:
        # parsed on a worker: a large JSON body must not hold the event loop
        args = self.query_args()
        changes = await self.registry.run(put_changes, self.body(), args)
        name = self.model_name or name or ""
        if "_create" in args:  # create only: 409 naming the model if it exists, nothing changed
            await self.send_json(await self.registry.create_model(name, changes, only=True))
            return
        try:
            m = await self.resolve(name)
        except NotFound:
            await self.send_json(await self.registry.create_model(name, changes))
            return
        await self.send_json(await self.registry.run(m.configure, changes))

    # ------------------------------------------------------------------ DELETE

    @tornado.web.authenticated
    async def delete(self, name: str | None = None, *_: str) -> None:
        args = self.query_args()
        if "_job" in args:
            await self.cancel_job(await self.resolve(name), args)
            return
        if "_log" in args:  # the prediction log (predlog_api.py)
            await predlog_api.delete_alone(
                self, await self.resolve(name), args, predlog_read, "log"
            )
            return
        if "_feedback" in args:  # the feedback, as the log (predlog_api.py)
            m = await self.resolve(name)
            await predlog_api.delete_alone(self, m, args, feedback_read, "feedback")
            return
        if "_key" in args:  # revoke a key (keys_api.py)
            await keys_api.revoke(self, await self.resolve(name), args)
            return
        items = []
        for key, values in args.items():
            if key in ("_model", "_cache"):
                items.append(key[1:])
            elif key == "delete":
                items.extend(values)
            else:
                items.append(key)
        unknown = [item for item in items if item not in DELETE_ITEMS]
        if unknown or not items:
            raise BadRequest(
                f"Cannot delete {', '.join(map(repr, unknown)) or 'nothing'}: use ?_model (the "
                "fitted model), ?_cache (the training data), ?delete=model|cache, or "
                "?delete=all (the whole model: options, data, versions and log)."
            )
        m = await self.resolve(name)
        if "all" in items:  # the whole model (mlwidget/removal.py); the registry forgets it
            await self.send_json(await self.registry.delete_model(m))
            return
        # Idempotent, as Gramex: an item already gone is listed as absent, still a 200.
        answer: dict[str, Any] = {"name": m.name, "deleted": [], "absent": []}
        for item in dict.fromkeys(items):
            done = await self.registry.run(m.delete_model if item == "model" else m.delete_data)
            answer["deleted"] += done["deleted"]
            answer["absent"] += done["absent"]
        await self.send_json(answer)
