"""Who sends a request to mlwidget's routes: a scoped key, a JupyterHub user with mlwidget's
scopes, or the server's own user (its token or login).

Keys are known only here, on mlwidget's handlers: ``KeyIdentity`` wraps Jupyter's identity
provider for them, so Jupyter's own handlers (contents, kernels, terminals, lab, voila) never
accept a key. A key request is token-authenticated (no XSRF cookie: it carries no cookie
credential); a key that is unknown, revoked, expired or past its rate is refused with the
reason, before anything else.
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.auth import User

from mlwidget import keys as keys_
from mlwidget.access import Caller

SCHEMES = ("bearer", "token")


def key_text(handler: Any) -> str | None:
    """The mlwidget key a request sends (``Authorization: Bearer mlw_...`` or ``token mlw_...``),
    or None."""
    header = handler.request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() in SCHEMES and value.startswith(keys_.PREFIX):
        return value
    return None


class KeyIdentity:
    """Jupyter's identity provider, plus mlwidget's keys (for mlwidget's handlers only)."""

    def __init__(self, inner: Any, ring: keys_.KeyRing) -> None:
        self.inner = inner
        self.ring = ring

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_user(self, handler: Any) -> Any:
        text = key_text(handler)
        if text is None:
            if cross_origin_cookie(handler):  # a browser's cookie never authenticates CORS
                return None
            return self.inner.get_user(handler)
        key = self.ring.check(text)  # 403 (unknown, revoked, expired) or 429, with the reason
        handler.mlwidget_key = key
        return User(username=f"key:{key.id}", name=key.name, display_name=key.name)

    def is_token_authenticated(self, handler: Any) -> bool:
        if getattr(handler, "mlwidget_key", None) is not None:
            return True
        return bool(self.inner.is_token_authenticated(handler))


def cross_origin_cookie(handler: Any) -> bool:
    """A request from another origin whose only credential could be a cookie (no
    ``Authorization`` header, no ``?token=``)."""
    from .cors import cross_origin

    return (
        cross_origin(handler) is not None
        and not handler.request.headers.get("Authorization")
        and "token" not in handler.request.query_arguments
    )


def owner_name() -> str:
    """How the audit names the server's own user: the JupyterHub user it runs for, or owner."""
    return os.environ.get("JUPYTERHUB_USER") or "owner"


def caller_of(handler: Any) -> Caller:
    """The caller of an authenticated request."""
    key = getattr(handler, "mlwidget_key", None)
    if key is not None:
        return key.caller()
    from . import hub

    return hub.caller(handler.current_user) or Caller(owner_name())
