"""``BaseHandler``: what every mlwidget handler shares. Jupyter authentication for every method
(then each handler's own checks, ``admit``), the authorizer asked per request, one error shape
(``{"error": message}``, never a traceback or a server path), JSON and file answers, the query
without Jupyter's own keys, and the registry's worker threads for every core call."""

from __future__ import annotations

import json
from http.client import responses
from typing import TYPE_CHECKING, Any

import tornado.web
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join

from mlwidget import MLWidgetError, access, predlog
from mlwidget import keys as keys_
from mlwidget.api import JUPYTER_KEYS
from mlwidget.errors import Forbidden
from mlwidget.jsonable import dumps

from . import callers, cors, hub
from .bodies import clip

if TYPE_CHECKING:
    from .registry import Registry


class BaseHandler(ExtensionHandlerMixin, APIHandler):
    """JSON API handler: Jupyter authentication, one error shape, worker-thread calls."""

    auth_resource = "mlwidget"

    def initialize(self, name: str, registry: Registry) -> None:  # type: ignore[override]
        super().initialize(name)
        self.registry = registry

    # APIHandler.prepare takes no ``_redirect_to_login`` (jupyter_server ignores the same
    # override there): this one is called as tornado calls it, without arguments.
    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()  # identifies the user (or key: callers.py) and checks XSRF
        if self.request.method == "OPTIONS":  # a CORS preflight: answered by options()
            return
        if not cors.allowed(self):
            raise Forbidden(
                f"Requests from {cors.cross_origin(self)} are not allowed here: the server's "
                "owner lists the origins of web apps that may call it (MLWidgetApp.cors_origins, "
                "or origins= of a key)."
            )
        if self.current_user:  # every write below records who made it (the audit)
            access.ACTING.set(self.caller_access().name)
        predlog.FACE.set("server")  # faces log their own answers, never as Python calls
        if not self._finished and not self.current_user:
            # as @tornado.web.authenticated does (the login page for a browser, else 403), for
            # every method: an unauthenticated request learns nothing, not even which methods
            # exist (jupyter_server lets undecorated methods through by default)
            tornado.web.authenticated(lambda handler: None)(self)
        if not self._finished and self.current_user:
            await self.admit()

    async def admit(self) -> None:
        """An authenticated request's own checks, before its body is read (a handler's size
        limit, the authorizer's verdict for its action). Nothing here."""

    def check_origin(self, origin_to_satisfy_tornado: str = "") -> bool:
        """Every origin reaches ``prepare``, which refuses the ones not allowed with a 403
        saying so (Jupyter answers them 404); see cors.py."""
        return True

    def set_cors_headers(self) -> None:
        """mlwidget's own CORS (cors.py), not Jupyter's (which lets any origin send a token)."""
        if cors.allowed(self):
            cors.allow(self)

    @allow_unauthenticated
    def options(self, *args: Any, **kwargs: Any) -> None:
        """A CORS preflight: answered for the origins the owner allows, else 403."""
        if not cors.preflight_allowed(self):
            raise Forbidden(
                f"Requests from {cors.cross_origin(self) or 'this page'} are not allowed here "
                "(MLWidgetApp.cors_origins, or origins= of a key)."
            )
        cors.allow(self)
        self.set_header("Access-Control-Allow-Methods", cors.METHODS)
        self.set_header("Access-Control-Allow-Headers", cors.HEADERS)
        self.set_header("Access-Control-Max-Age", cors.MAX_AGE)
        self.set_status(204)
        self.finish()

    @property
    def identity_provider(self) -> Any:
        """Jupyter's, plus mlwidget's scoped keys: they are known on mlwidget's routes only."""
        return callers.KeyIdentity(super().identity_provider, keys_.ring(self.registry.store))

    def caller_access(self) -> access.Caller:
        """Who sends this request: a key, a JupyterHub user with mlwidget's scopes, or the
        server's own user (callers.py)."""
        found = getattr(self, "_caller_access", None)
        if found is None:
            found = self._caller_access = callers.caller_of(self)
        return found

    async def require(self, role: str, model: str, what: str, owner_action: str) -> None:
        """403 unless the caller holds ``role`` on ``model``; the server's own user is asked
        of Jupyter's authorizer for ``owner_action`` (read or write), as before roles."""
        caller = self.caller_access()
        if caller.is_owner:
            await self.check_authorized(owner_action)
        elif not caller.may(role, model):
            raise Forbidden(caller.refusal(role, model, what))

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
            if status_code == 403 and self.current_user and "xsrf" in message.lower():
                message = hub.xsrf_refusal(self, message)
            elif status_code == 403 and not self.current_user and not self.key_refused():
                message = hub.unauthenticated(self) or (  # on JupyterHub: which case it is
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
        message = clip(message)
        if getattr(exc, "job", None):  # a busy model: the job that holds it
            reply["job"] = exc.job
        if getattr(exc, "retry_after", None):  # a key past its rate
            self.set_header("Retry-After", str(exc.retry_after))
        self.set_status(status_code)
        self.set_header("Content-Type", "application/json")
        if cors.cross_origin(self) and cors.allowed(self):  # send_error cleared the headers
            cors.allow(self)  # a web app reads its errors too
        if status_code == 405:  # RFC 9110: say which methods are supported
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.finish(json.dumps({"error": message, **reply}))

    def key_refused(self) -> bool:
        """Whether the request sent an mlwidget key (refused: its own message says why)."""
        return callers.key_text(self) is not None

    def allowed_methods(self) -> list[str]:
        base = tornado.web.RequestHandler
        return [
            method
            for method in ("GET", "POST", "PUT", "DELETE")
            if getattr(type(self), method.lower()) is not getattr(base, method.lower())
        ]

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, MLWidgetError):
            self.log.warning("%d %s: %s", value.status, self._request_summary(), clip(str(value)))
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
