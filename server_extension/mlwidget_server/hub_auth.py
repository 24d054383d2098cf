"""A JupyterHub single-user server shared through mlwidget's roles: one line of config,

    c.ServerApp.authorizer_class = "mlwidget_server.hub_auth.HubAuthorizer"

and the server's own user keeps every right, while any other Hub user (or token) may use only
mlwidget's models, as their ``custom:mlwidget:viewer|trainer|owner`` scopes say (hub.py). Two
parts:

- ``HubAuthorizer`` answers Jupyter's handlers that ask (contents, kernels, sessions, terminals,
  kernelspecs, nbconvert, config, events, api...): yes for the owner; for anyone else, yes only
  on the ``mlwidget`` resource and only with a grant (mlwidget's handlers then check the role
  each model and action needs).
- ``HubGuard`` is for the handlers that never ask the authorizer (Voila's render, JupyterLab's
  pages, settings and workspaces, ``/api/me``): it sits in front of the server's identity
  provider, which every Jupyter handler asks who is calling, and refuses (403, naming the
  reason) a caller who is not the owner on any handler but mlwidget's and those that serve
  anyone (``@allow_unauthenticated``: static files, logout). The extension puts it there when
  the HubAuthorizer (or a subclass) is the server's authorizer, and only then.
"""

from __future__ import annotations

import html
import json
from typing import Any, NoReturn

from jupyter_core.utils import ensure_async
from jupyter_server.auth import Authorizer
from jupyter_server.base.handlers import APIHandler
from tornado.log import app_log
from tornado.web import Finish

from mlwidget.access import Caller

from . import hub
from .base import BaseHandler


def caller_of(handler: Any, user: Any) -> Caller:
    """Who calls: on mlwidget's handlers, as they see it (a key, a Hub user, the owner)."""
    if isinstance(handler, BaseHandler):
        return handler.caller_access()
    return hub.caller(user) or Caller(hub.this_server()[0] or "owner")


class HubAuthorizer(Authorizer):
    """The server's own user may do everything; any other JupyterHub user or token only use
    mlwidget (``resource="mlwidget"``) when their scopes grant a role on this server."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        caller = caller_of(handler, user)
        return caller.is_owner or (resource == "mlwidget" and bool(caller.grants))


def serves_anyone(handler: Any) -> bool:
    """Whether the handler's method serves even unauthenticated requests (jupyter_server's
    ``@allow_unauthenticated``: static files, logout, redirects): a colleague may have it."""
    method = getattr(handler, (handler.request.method or "get").lower(), None)
    return bool(getattr(method, "__allow_unauthenticated", False))


class HubGuard:
    """The server's identity provider, refusing non-owners everywhere but mlwidget's routes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_user(self, handler: Any) -> Any:
        user = await ensure_async(self.inner.get_user(handler))
        if user is None:
            auth = getattr(self.inner, "hub_auth", None)  # who the Hub named, if it refused them
            model = await auth.get_user(handler, sync=False) if auth is not None else None
            if isinstance(model, dict) and model.get("name"):
                handler.mlwidget_refused = str(model["name"])
            return None
        if isinstance(handler, BaseHandler) or serves_anyone(handler):
            return user  # mlwidget's handlers check each model's role themselves
        caller = hub.caller(user)
        if caller is None:
            return user  # the server's own user
        owner = hub.this_server()[0]
        held = "; ".join(g.describe() for g in caller.grants) or "no role on any model"
        refuse(
            handler,
            f"{caller.name} may use only the mlwidget models on {owner}'s server ({held}); "
            f"{handler.request.path} is for {owner} alone.",
        )


def refuse(handler: Any, text: str) -> NoReturn:
    """Answer 403 with ``text`` (JSON, or a page for a browser; the same for every handler,
    whose own error pages may not show it: Voila's do not), and end the request."""
    app_log.warning("403 %s %s: %s", handler.request.method, handler.request.path, text)
    handler.current_user = None  # nothing after this takes the request as the caller's
    handler.clear()
    handler.set_status(403)
    page = "text/html" in handler.request.headers.get("Accept", "")
    if isinstance(handler, APIHandler) or not page:  # (an APIHandler answers JSON)
        handler.set_header("Content-Type", "application/json")
        handler.finish(json.dumps({"error": text, "message": text}))
    else:
        handler.set_header("Content-Type", "text/html; charset=UTF-8")
        handler.finish(f"<!DOCTYPE html>\n<title>403 Forbidden</title>\n<h1>403 Forbidden</h1>\n"
                       f"<p>{html.escape(text)}</p>\n")  # fmt: skip
    raise Finish()


def install(app: Any) -> bool:
    """Put the guard in front of the server's identity provider when the server's authorizer
    is a HubAuthorizer (elsewhere nothing changes). Whether it is on."""
    serverapp = app.serverapp
    enabled = isinstance(getattr(serverapp, "authorizer", None), HubAuthorizer)
    inner = app.settings.get("identity_provider")  # the server's (an extension's settings
    if not enabled or inner is None:  # are a copy, written back to the server's after this)
        return False
    if not isinstance(inner, HubGuard):
        guard = HubGuard(inner)
        app.settings["identity_provider"] = serverapp.web_app.settings["identity_provider"] = guard
        owner = hub.this_server()[0] or "the server's owner"
        app.log.info("mlwidget: Hub users but %s may use only mlwidget's routes here", owner)
    return True
