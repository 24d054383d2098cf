"""The MLHandler HTTP API. Handlers stay thin: parse the request, call ``MLModel``, answer.

Every core call runs on the registry's worker threads (``Registry.run``) so that large
predictions never block the Jupyter server's event loop; training (and, with ``_wait=false``,
scores and predictions) runs as a job on the registry's runner (mlwidget.jobs): in worker
processes by default, observable with ``?_job``, cancelled with ``DELETE ?_job``.
"""

from __future__ import annotations

import json
from http.client import responses
from typing import IO, TYPE_CHECKING, Any

import tornado.escape
import tornado.template
import tornado.web
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_escape, url_path_join

from mlwidget import BadRequest, MLWidgetError, NotFound, PayloadTooLarge
from mlwidget.api import (
    ACTIONS,
    CACHE_FORMATS,
    JUPYTER_KEYS,
    LIST_ACTIONS,
    PREDICT_FORMATS,
    WRITE_ACTIONS,
)

from . import bodies, streaming
from .bodies import _clip, dumps, last, parse_body, put_changes, wants_wait
from .jobs_api import JobsMixin
from .pages import ListingMixin, PageMixin

if TYPE_CHECKING:
    import pandas as pd

    from mlwidget import MLModel

    from .registry import Registry


class BaseHandler(ExtensionHandlerMixin, APIHandler):
    """JSON API handler: Jupyter authentication, one error shape, worker-thread calls."""

    auth_resource = "mlwidget"

    def initialize(self, name: str, registry: Registry) -> None:  # type: ignore[override]
        super().initialize(name)
        self.registry = registry
        self._spool: IO[bytes] | None = None  # a streamed body: in memory, on disk past SPOOL_BYTES
        self._received = 0
        self._too_large = False
        self._body_taken = False

    async def prepare(self) -> None:
        await super().prepare()  # identifies the user and checks XSRF
        if not self._finished and not self.current_user:
            # as @tornado.web.authenticated does (the login page for a browser, else 403), for
            # every method: an unauthenticated request learns nothing, not even which methods
            # exist (jupyter_server lets undecorated methods through by default)
            tornado.web.authenticated(lambda handler: None)(self)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error is ``{"error": message}``; never a traceback or a server path."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        reply: dict[str, Any] = {}
        if isinstance(exc, MLWidgetError):
            status_code = exc.status
            message = str(exc)
        elif isinstance(exc, tornado.web.HTTPError):
            message = exc.log_message or responses.get(status_code, "HTTP error")
            if exc.args and exc.log_message:
                try:
                    message = exc.log_message % exc.args
                except (TypeError, ValueError):
                    pass
            reply = {"message": message, "reason": exc.reason}
            if status_code == 403 and not self.current_user:
                message = (
                    "Expected the Jupyter server's token, got a request without a valid one. "
                    'Send it as a header (curl -H "Authorization: token $TOKEN" ...) or in the '
                    "URL (?token=...); `jupyter server list` shows the token of a running "
                    f"server, and a browser can log in at {url_path_join(self.base_url, 'login')}."
                )
        elif exc is None:
            message = responses.get(status_code, "HTTP error")
        else:
            status_code = 500
            message = "Internal error in the mlwidget server extension. The server log has details."
        message = _clip(message)
        if getattr(exc, "job", None):  # a busy model: the job that holds it
            reply["job"] = exc.job
        self.set_status(status_code)
        self.set_header("Content-Type", "application/json")
        if status_code == 405:  # RFC 9110: say which methods are supported
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.finish(json.dumps({"error": message, **reply}))

    def allowed_methods(self) -> list[str]:
        base = tornado.web.RequestHandler
        return [
            method
            for method in ("GET", "POST", "PUT", "DELETE")
            if getattr(type(self), method.lower()) is not getattr(base, method.lower())
        ]

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, MLWidgetError):
            self.log.warning("%d %s: %s", value.status, self._request_summary(), _clip(str(value)))
        else:
            super().log_exception(typ, value, tb)

    async def send_json(self, obj: Any, quick: bool = False) -> None:
        """``obj`` as JSON, made on a worker thread: a model's info with 2M parameter values
        or a large answer must not hold the event loop. ``quick``: a few values known to be
        small (a fast-path prediction), made here."""
        self.finish(dumps(obj) if quick else await self.registry.run(dumps, obj))

    def send_file(self, data: bytes, mime: str, filename: str) -> None:
        self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.finish(data, set_content_type=mime)

    def limit_body(self) -> None:
        """For a streamed body: 413 from its Content-Length past ``max_body_size``, before it
        is read. Bodies without a Content-Length are counted in ``data_received`` and dropped
        beyond the limit; the connection itself gives up at twice the limit."""
        limit = self.registry.max_body_size
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(
                f"The request body is {int(length)} bytes; this server accepts at most {limit} "
                "bytes (MLWidgetApp.max_body_size). Send a smaller body or raise the limit."
            )
        self.request.connection.set_max_body_size(2 * limit + 1)

    # a streamed body (@tornado.web.stream_request_body handlers), spooled as it arrives
    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self._received += len(chunk)
        if self._received > self.registry.max_body_size:
            self._too_large = True
            self.on_finish()
        else:
            if self._spool is None:
                self._spool = streaming.new_spool()
            self._spool.write(chunk)

    def body(self) -> bytes:
        self.check_body_size()
        return streaming.read_all(self.spool())

    def spool(self) -> IO[bytes] | None:
        """The request's body as received (None: empty); from now on it is the handler's to
        close when it finishes, not the connection's when it closes."""
        self._body_taken = True
        return self._spool

    def on_connection_close(self) -> None:
        """The client went away: a body still arriving (an aborted upload) is closed now, its
        temporary file with it, not whenever the garbage collector finds the handler."""
        super().on_connection_close()
        if not self._body_taken:
            self.on_finish()

    def check_body_size(self) -> None:
        if self._too_large:
            raise PayloadTooLarge(
                f"The request body is over {self.registry.max_body_size} bytes, the most this server "
                "accepts (MLWidgetApp.max_body_size). Send a smaller file or raise the limit."
            )

    def on_finish(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def query_args(self) -> dict[str, list[str]]:
        """The query as ``{key: [values]}`` (strings), without Jupyter's own keys."""
        return {
            key: [v.decode("utf-8", "replace") for v in values]
            for key, values in self.request.query_arguments.items()
            if key not in JUPYTER_KEYS
        }

    async def check_authorized(self, action: str) -> None:
        """Jupyter's authorizer, as ``@authorized`` does it, with an action chosen per request."""
        user = self.current_user
        ok = user and await ensure_async(
            self.authorizer.is_authorized(self, user, action, self.auth_resource)
        )
        if not ok:
            raise tornado.web.HTTPError(
                403, f"User is not authorized to {action} on resource: {self.auth_resource}."
            )


@tornado.web.stream_request_body
class ModelListHandler(ListingMixin, BaseHandler):
    """``GET {base_url}mlhandler/``: the models of the store and of the server config;
    ``POST ?_action=preview`` with a file: what a model made from it would be (stores nothing)."""

    async def prepare(self) -> None:
        await super().prepare()  # authenticates (see BaseHandler), before any body is read
        if self._finished or not self.current_user or self.request.method != "POST":
            return
        self.limit_body()
        await self.check_authorized("write")  # a preview reads an upload: as a write does

    @tornado.web.authenticated
    async def post(self) -> None:
        args = self.query_args()
        action = last(args, "_action")
        if action not in LIST_ACTIONS:
            raise BadRequest(
                f"Expected _action={' or '.join(LIST_ACTIONS)} on the model listing, got "
                f"{_clip(str(action))!r}. POST a file to ?_action=preview to see the model it "
                "would make; the other actions are on {base_url}mlhandler/{name}."
            )
        ctype = self.request.headers.get("Content-Type", "")
        await self.send_json(await self.registry.run(bodies.preview, self.body(), ctype, args))

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        app = self.registry
        self.set_header("Vary", "Accept")
        if self.wants_html():  # a browser: the listing page and "New model" (pages.py)
            await self.render_listing(await app.run(app.model_names))
            return
        patterns = {name: pattern for pattern, name in app.routes}
        models = []
        for name in await app.run(app.model_names):
            url = url_path_join(self.base_url, "mlhandler", name)
            entry = {"name": name, "url": url, "openapi": f"{url}?_openapi"}
            if name in patterns:
                entry["pattern"] = url_path_join(self.base_url, patterns[name].lstrip("/"))
            if app.failure(name):
                entry["error"] = app.failure(name)
            models.append(entry)
        await self.send_json({"models": models})


@tornado.web.stream_request_body
class ModelHandler(JobsMixin, PageMixin, BaseHandler):
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

    async def prepare(self) -> None:
        await super().prepare()  # authenticates (see BaseHandler), before any body is read
        if self._finished or not self.current_user:
            return
        self.limit_body()
        await self.check_authorized(self._auth_action())

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
            return "write" if "_download" in self.request.query_arguments else "read"
        if method == "POST":
            action = self.get_query_argument("_action", "predict")
            return "write" if action in WRITE_ACTIONS else "read"
        return "write"

    # ------------------------------------------------------------------ helpers

    async def resolve(self, name: str | None) -> MLModel:
        self.mlmodel = await self.registry.get_model(self.model_name or name or "")
        return self.mlmodel

    def api_url(self, name: str) -> str:
        return url_path_join(self.base_url, "mlhandler", url_escape(name))

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
        elif "_versions" in args:
            await self.send_json(await run(m.versions))
        elif "_download" in args:
            version = last(args, "version")
            if fmt == "mlflow":
                data = await run(m.export_zip, "mlflow", version)
                stem = f"{m.name}-v{int(version)}" if version else m.name
                self.send_file(data, "application/zip", f"{stem}-mlflow.zip")
                return
            if fmt not in (None, "", "joblib"):
                raise BadRequest(f"Unknown _format {fmt!r} for _download: use joblib or mlflow.")
            data = await run(m.model_bytes, version)
            stem = f"{m.name}-v{int(version)}" if version else m.name
            self.send_file(data, "application/octet-stream", f"{stem}.joblib")
        elif "_model" in args:
            await self.send_json(await run(m.info))
        elif "_params" in args:
            await self.send_json(await run(m.params_info))
        elif "_cache" in args:
            df = await run(m.data)
            await self.send_table(df, fmt or "json", f"{m.name}-data")
        elif any(not key.startswith("_") for key in args):
            if fmt in (None, "", "json"):
                # A loaded, compiled model answers a few rows from memory in microseconds, on
                # the loop; anything else (loading, compiling, many rows, errors) on a worker.
                out = m.predict_query(args, fast_only=True)
                if out is not None:
                    await self.send_json(out, quick=True)
                else:
                    await self.send_json(await run(m.predict_query, args))
            else:
                from mlwidget.tables import from_query

                await self.send_predictions(m, from_query(args), fmt)
        else:
            await self.render_page(m)

    async def send_table(self, df: pd.DataFrame, fmt: str, stem: str) -> None:
        if fmt in ("json", "records"):
            text = await self.registry.run(df.to_json, orient="records", date_format="iso")
            self.finish(text)
            return
        if fmt not in CACHE_FORMATS:
            raise BadRequest(f"Unknown _format {fmt!r}. Use {', '.join(CACHE_FORMATS)}.")
        from mlwidget.tables import to_bytes

        data, mime, ext = await self.registry.run(to_bytes, df, fmt)
        self.send_file(data, mime, f"{stem}.{ext.lstrip('.')}")

    async def send_predictions(self, m: MLModel, df: pd.DataFrame, fmt: str | None) -> None:
        if fmt in (None, "", "json"):
            await self.send_json(await self.registry.run(m.predict, df))
            return
        if fmt not in PREDICT_FORMATS:
            raise BadRequest(
                f"Unknown _format {fmt!r} for predictions. Use {', '.join(PREDICT_FORMATS)}."
            )
        if fmt == "table":  # the input, the predictions and how right they are, as JSON
            out = await self.registry.run(bodies.table_results, m, df, self.query_args())
            self.finish(out)
            return
        table = await self.registry.run(m.predict_table, df)
        await self.send_table(table, fmt, f"{m.name}-predictions")

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
        metric = last(args, "_metric") or last(args, "metric") or None
        wait = wants_wait(args)
        ctype = self.request.headers.get("Content-Type", "")
        self.check_body_size()
        if action == "predict" and await streaming.answer_large(self, m, wait, args):
            return
        df = await run(parse_body, self.body(), ctype, args)
        if action in ("predict", "predict_proba", "score", "append") and df is None:
            raise BadRequest(
                f"_action={action} needs rows in the request body: JSON records, CSV, XLSX or "
                "Parquet, or a multipart file upload."
            )
        if action in ("retrain", "train"):
            target = last(args, "target_col") or last(args, "_target_col") or None
            job = await run(m.start_retrain, df, target_col=target, metric=metric)
            job.caller = self.caller()
            await self.answer_job(m, job, wait)
        elif not wait and action in ("predict", "predict_proba", "score"):
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
            await self.send_predictions(m, df, last(args, "_format"))
        elif action == "predict_proba":
            await self.send_json(await run(m.predict_proba, df))
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
        items = []
        for key, values in args.items():
            if key in ("_model", "_cache"):
                items.append(key[1:])
            elif key == "delete":
                items.extend(values)
            else:
                items.append(key)
        unknown = [item for item in items if item not in ("model", "cache")]
        if unknown or not items:
            raise BadRequest(
                f"Cannot delete {', '.join(map(repr, unknown)) or 'nothing'}: use ?_model (the "
                "fitted model), ?_cache (the training data), or ?delete=model|cache."
            )
        m = await self.resolve(name)
        # Idempotent, as Gramex: an item already gone is listed as absent, still a 200.
        answer: dict[str, Any] = {"name": m.name, "deleted": [], "absent": []}
        for item in dict.fromkeys(items):
            done = await self.registry.run(m.delete_model if item == "model" else m.delete_data)
            answer["deleted"] += done["deleted"]
            answer["absent"] += done["absent"]
        await self.send_json(answer)
