"""mlwidget's Jupyter server extension: Gramex's MLHandler REST API over the model store.

Enabled automatically by ``pip install mlwidget`` (a ``jupyter_server_config.d`` JSON); it serves
``{base_url}mlhandler/{name}`` for every model in the store. See ``docs/rest.md``.

``MLWidgetApp`` (and with it jupyter_server) is imported when it is first asked for, so that the
command line's quick commands (``jupyter mlwidget keys``) start without loading a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlwidget import __version__

if TYPE_CHECKING:
    from .app import MLWidgetApp

__all__ = ["MLWidgetApp", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "MLWidgetApp":
        from .app import MLWidgetApp

        return MLWidgetApp
    raise AttributeError(f"module 'mlwidget_server' has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict]:
    from .app import MLWidgetApp

    return [{"module": "mlwidget_server", "app": MLWidgetApp}]
