"""``MLWidgetLauncher``: the Jupyter server of ``jupyter mlwidget``, in this process.

A thin ``ExtensionApp`` whose ``launch_instance`` starts a stock Jupyter server with the
``mlwidget_server`` and Voila extensions (and every extension enabled in the Jupyter config, as
``jupyter server`` loads them). It serves nothing itself; it only

- makes Ctrl-C stop the server at once, as SIGTERM does (no "Shut down this server?" prompt),
  with a watchdog: a server that has not exited ``STOP_TIMEOUT`` seconds after the signal
  exits anyway, and
- calls ``on_ready(serverapp)`` once the server listens (its real port, base URL and token
  are then known), which ``jupyter mlwidget`` uses to print what to open.

It is an extension point of its own module, ``mlwidget_server.launcher``, which no config file
enables: only ``MLWidgetLauncher.launch_instance`` loads it, and ``jupyter server`` never does.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from traitlets import default
from traitlets.config import Config

# Seconds a stopping server gets before it exits regardless: enough for Jupyter to shut its
# kernels down (it waits up to 5 s for each, in parallel), short enough that SIGTERM stops
# everything within 10 s.
STOP_TIMEOUT = 8.0
EXTENSIONS = {"mlwidget_server": True, "voila.server_extension": True}


class MLWidgetLauncher(ExtensionApp):
    """Start a Jupyter server with mlwidget's and Voila's extensions (see the module doc)."""

    name = "mlwidget_launcher"
    description = "A Jupyter server with the mlwidget REST API and Voila."
    load_other_extensions = True
    # Set by ``jupyter mlwidget``: the server's configuration (which the config files and the
    # command line override, unlike ``serverapp_config``), and what to call with the ServerApp
    # once it listens.
    server_config: ClassVar[dict[str, Any]] = {}
    on_ready: ClassVar[Callable[[ServerApp], None] | None] = None
    stopping = False

    @classmethod
    def get_extension_package(cls) -> str:
        # This module, not the mlwidget_server package (whose extension point is MLWidgetApp).
        return __name__

    @classmethod
    def make_serverapp(cls, **kwargs: Any) -> ServerApp:
        # Enable the extensions here rather than in serverapp_config: that would stop the server
        # from loading the extensions enabled in the Jupyter config (JupyterLab, Notebook).
        kwargs["jpserver_extensions"] = {**EXTENSIONS, **kwargs.get("jpserver_extensions", {})}
        kwargs.setdefault("config", Config(cls.server_config))
        return super().make_serverapp(**kwargs)

    @default("default_url")
    def _default_url(self) -> str:
        # The ServerApp's own (configured) default URL: the starter extension's default_url
        # replaces it, and this one has no page of its own.
        assert self.serverapp is not None
        return self.serverapp.config.ServerApp.get("default_url", "/")

    def initialize_settings(self) -> None:
        # The ServerApp has set its signal handlers by now: replace them. Without a terminal,
        # Jupyter leaves SIGINT to Python (a KeyboardInterrupt that skips the kernels' shutdown);
        # with one, it asks for a confirmation.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_stop_signal)

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        if self.stopping:
            return  # a second Ctrl-C: the server is already stopping
        type(self).stopping = True
        print("\nmlwidget: stopping the Jupyter server...", file=sys.stderr, flush=True)
        watchdog = threading.Timer(STOP_TIMEOUT, _exit_now)
        watchdog.daemon = True
        watchdog.start()
        assert self.serverapp is not None
        self.serverapp.stop(from_signal=True)

    async def _start_jupyter_server_extension(self, serverapp: ServerApp) -> None:
        # Runs once the IO loop has started, after the server has bound its port.
        callback = type(self).on_ready
        if callback is not None:
            callback(serverapp)


def _exit_now() -> None:  # pragma: no cover - only when a shutdown hangs
    print(
        f"mlwidget: the Jupyter server did not stop in {STOP_TIMEOUT:.0f} s: exiting now.",
        file=sys.stderr,
        flush=True,
    )
    os._exit(1)


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": __name__, "app": MLWidgetLauncher}]
