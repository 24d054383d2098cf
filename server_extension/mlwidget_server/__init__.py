"""mlwidget's Jupyter server extension: Gramex's MLHandler REST API over the model store.

Enabled automatically by ``pip install mlwidget`` (a ``jupyter_server_config.d`` JSON); it serves
``{base_url}mlhandler/{name}`` for every model in the store. See ``docs/rest.md``.
"""

from __future__ import annotations

from mlwidget import __version__

from .app import MLWidgetApp

__all__ = ["MLWidgetApp", "__version__"]


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "mlwidget_server", "app": MLWidgetApp}]
