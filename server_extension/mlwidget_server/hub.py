"""JupyterHub's custom scopes as mlwidget roles, on a single-user server.

The Hub gives a user (or a token) the custom scopes ``custom:mlwidget:viewer``,
``custom:mlwidget:trainer`` or ``custom:mlwidget:owner``, filtered as every scope may be
(``!user=alice``, ``!server=alice/``, ``!group=analysts``...); the single-user server sees
the caller's expanded scopes in ``current_user.hub_user["scopes"]``. A scope counts on this
server when it has no filter, or its ``user``/``server`` filter names this server's user or
server (group filters are expanded by the Hub into the user's own scopes). The server's own
user is owner of everything.
"""

from __future__ import annotations

import os
import re
from typing import Any

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


def caller(user: Any) -> Caller | None:
    """The caller a JupyterHub user is on this server (None: not on JupyterHub, or the
    server's own user: owner of everything)."""
    hub_user = getattr(user, "hub_user", None)
    owner, _ = this_server()
    if not isinstance(hub_user, dict) or not owner:
        return None
    name = str(hub_user.get("name") or "")
    if hub_user.get("kind", "user") == "user" and name == owner:
        return None
    return Caller(name or "unknown", "hub", grants(hub_user.get("scopes")))
