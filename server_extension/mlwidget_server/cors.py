"""CORS for mlwidget's REST routes: a web app on another origin may call a model with a key.

An origin may send requests when the server allows it for everything
(``MLWidgetApp.cors_origins``) or the key the request carries names it (``origins`` of the key);
a preflight (``OPTIONS``, which carries no key) is answered for the server's origins and for the
origins of any active key. A cross-origin request must carry its credential in the
``Authorization`` header: a browser's cookie never authenticates one (``Access-Control-Allow-
Credentials`` is never sent). Same-origin requests and scripts (no ``Origin``) are unaffected.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from mlwidget import keys as keys_

METHODS = "GET, POST, PUT, DELETE, OPTIONS"
HEADERS = "authorization, content-type, inference-header-content-length"
MAX_AGE = "600"  # seconds a browser may keep a preflight's answer


def cross_origin(handler: Any) -> str | None:
    """The request's ``Origin`` when it is another origin than the server's, else None."""
    origin = handler.request.headers.get("Origin")
    host = handler.request.headers.get("Host")
    if not origin or not host or urlparse(origin.lower()).netloc == host.lower():
        return None
    return str(origin)


def server_origins(handler: Any) -> tuple[str, ...]:
    return tuple(getattr(handler.registry, "cors_origins", ()) or ())


def allowed(handler: Any) -> bool:
    """Whether this request may come from its origin (True for same-origin and scripts)."""
    origin = cross_origin(handler)
    if origin is None:
        return True
    if "*" in server_origins(handler) or origin in server_origins(handler):
        return True
    key = getattr(handler, "mlwidget_key", None)
    return key is not None and origin in key.origins


def preflight_allowed(handler: Any) -> bool:
    """Whether a preflight from this origin is answered: a server origin, or an active key's."""
    origin = cross_origin(handler)
    if origin is None:
        return False
    if "*" in server_origins(handler) or origin in server_origins(handler):
        return True
    ring = keys_.ring(handler.registry.store)
    return any(origin in key.origins and key.status() == "active" for key in ring.list())


def allow(handler: Any) -> None:
    """The headers that let the browser read the answer (no credentials: cookies stay home)."""
    origin = cross_origin(handler)
    if origin is not None:
        handler.set_header("Access-Control-Allow-Origin", origin)
        handler.set_header("Access-Control-Expose-Headers", "Retry-After, Location")
    handler.add_header("Vary", "Origin")
