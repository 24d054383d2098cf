"""JupyterHub's custom scopes as mlwidget roles, on a single-user server.

The Hub gives a user (or a token) the custom scopes ``custom:mlwidget:viewer``,
``custom:mlwidget:trainer`` or ``custom:mlwidget:owner``, filtered as every scope may be
(``!user=alice``, ``!server=alice/``, ``!group=analysts``...); the single-user server sees
the caller's expanded scopes in ``current_user.hub_user["scopes"]``. A scope counts on this
server when it has no filter, or its ``user``/``server`` filter names this server's user or
server. A ``!group=`` filter names the *servers* of a group's members, which this server cannot
check: such a scope gives nothing here (give roles to groups instead: a group is who holds a
scope, the filter is whose server it opens). The server's own user (with an ``access:servers``
scope on this server: a token of theirs limited to mlwidget's scopes is only what those scopes
give) is owner of everything.

``unauthenticated`` says why a request on JupyterHub was not identified (for the 403 message).
"""

from __future__ import annotations

import os
import re
from typing import Any

from tornado.web import HTTPError

from mlwidget.access import Caller, Grant

SCOPE = re.compile(r"^custom:mlwidget:(viewer|trainer|owner)(?:!(user|server)=(.+))?$")


def this_server() -> tuple[str | None, str]:
    """The user this server runs for, and its server name ('' for the default server)."""
    return os.environ.get("JUPYTERHUB_USER"), os.environ.get("JUPYTERHUB_SERVER_NAME", "")


def applies(kind: str | None, value: str | None) -> bool:
    """Whether a scope's filter (``user=alice``, ``server=alice/``) names this server."""
    owner, server = this_server()
    if kind is None:
        return True
    if kind == "user":
        return value == owner
    return value == f"{owner}/{server}"


def grants(scopes: Any) -> tuple[Grant, ...]:
    """The grants mlwidget's custom scopes give on this server."""
    out = []
    for scope in scopes or ():
        match = SCOPE.match(str(scope))
        if match and applies(match[2], match[3]):
            out.append(Grant(match[1], "*"))
    return tuple(out)


def full_access(scopes: Any) -> bool:
    """Whether ``scopes`` open this whole server (JupyterHub's ``access:servers`` on it)."""
    owner, server = this_server()
    wanted = {
        "access:servers",
        f"access:servers!user={owner}",
        f"access:servers!server={owner}/{server}",
    }
    return bool(wanted & {str(s) for s in scopes or ()})


def caller(user: Any) -> Caller | None:
    """The caller a JupyterHub user is on this server (None: not on JupyterHub, or the
    server's own user with access to the whole server: owner of everything)."""
    hub_user = getattr(user, "hub_user", None)
    owner, _ = this_server()
    if not isinstance(hub_user, dict) or not owner:
        return None
    name = str(hub_user.get("name") or "")
    scopes = hub_user.get("scopes")
    if hub_user.get("kind", "user") == "user" and name == owner and full_access(scopes):
        return None
    return Caller(name or "unknown", "hub", grants(scopes))


def unauthenticated(handler: Any) -> str | None:
    """Why a request to this JupyterHub server was not identified: a user the Hub does not let
    in, a browser session's write without its XSRF token, or no credential (None: not on
    JupyterHub)."""
    auth = getattr(handler.identity_provider, "hub_auth", None)
    if auth is None:
        return None
    owner, server = this_server()
    refused = getattr(handler, "mlwidget_refused", None)  # set by hub_auth.HubGuard
    if refused:
        return (
            f"JupyterHub user {refused} may not use {owner}'s server: the Hub gives them none of "
            f"its access scopes ({', '.join(sorted(auth.access_scopes))}). Ask {owner} or a Hub "
            f"admin for a role with custom:mlwidget:viewer!server={owner}/{server} (and, for a "
            f"browser, access:servers!server={owner}/{server})."
        )
    cookie = auth.cookie_name in handler.request.cookies
    if cookie and handler.request.method not in ("GET", "HEAD", "OPTIONS"):
        try:
            handler.check_xsrf_cookie()
        except HTTPError as exc:
            return xsrf_refusal(handler, exc.log_message or "")
    return (
        f"Expected a JupyterHub login or API token with access to {owner}'s server, got a "
        "request without a valid one. Send a token from the Hub (its Token page, or its REST "
        'API) as a header: curl -H "Authorization: token $TOKEN" ...; a browser logs in through '
        "the Hub."
    )


def xsrf_refusal(handler: Any, reason: str) -> str:
    """The 403 message for a cookie-authenticated write without a valid XSRF token."""
    return (
        f"This {handler.request.method} came from a browser session (a login cookie) without a "
        f"valid XSRF token ({reason or 'missing'}). A page sends the _xsrf cookie's value as the "
        "X-XSRFToken header (as the model page does); a program sends a token instead "
        '(-H "Authorization: token $TOKEN").'
    )
