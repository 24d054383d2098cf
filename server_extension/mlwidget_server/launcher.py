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

Kernel hygiene (``server_defaults()``, which config files and the command line override):

- A Voila page shuts its kernel down when it closes (a ``sendBeacon`` POST to
  ``voila/api/shutdown/<id>`` carrying the ``_xsrf`` cookie). Voila 0.5's server extension never
  sets that cookie (it streams the page without reading ``xsrf_token``), so the POST is refused
  with 403 "'_xsrf' argument missing" and every view leaves a kernel running.
  ``voila_prelaunch_hook`` (Voila's documented ``VoilaConfiguration.prelaunch_hook``) reads the
  handler's ``xsrf_token``, which sets the cookie on the page's response before its first byte;
  the shutdown then passes the unchanged XSRF check.
- Kernels nobody is connected to are culled after ``CULL_IDLE_TIMEOUT`` seconds idle: the
  backstop for a page that dies without its ``beforeunload`` (a crash, a lost network). A page
  that is open stays connected, so its kernel stays.
- Kernels get CurveZMQ keys when the kernel declares support (ipykernel does), so their traffic
  is encrypted and ipykernel does not warn "Kernel is running over TCP without encryption".
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
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
# Seconds a kernel no client is connected to may stay idle before the server shuts it down, and
# how often it looks (--MappingKernelManager.cull_idle_timeout=0 turns culling off).
CULL_IDLE_TIMEOUT = 300
CULL_INTERVAL = 60


def voila_prelaunch_hook(req: Any, notebook: Any = None, cwd: str = "") -> None:
    """Voila's ``prelaunch_hook``: set the ``_xsrf`` cookie on the dashboard page's response, so
    that the page's shutdown request on close passes the XSRF check (see the module doc).
    ``apply_server_defaults`` sets it for a plain ``jupyter server``."""
    req.xsrf_token  # noqa: B018 - reading the token sets the cookie (tornado's RequestHandler)


def server_defaults() -> dict[str, Any]:
    """The kernel-hygiene configuration ``jupyter mlwidget`` starts from (see the module doc)."""
    import zmq

    kernels: dict[str, Any] = {
        "cull_idle_timeout": CULL_IDLE_TIMEOUT,
        "cull_interval": CULL_INTERVAL,
        "cull_connected": False,  # an open dashboard keeps its kernel
    }
    config: dict[str, Any] = {
        "MappingKernelManager": kernels,
        "VoilaConfiguration": {"prelaunch_hook": voila_prelaunch_hook},
        # tornado clamps Jupyter's default timeout (3 pings) to one ping interval, with a
        # warning per server: ask for what tornado does anyway
        "ServerApp": {"tornado_settings": {"ws_ping_timeout": 30_000}},
    }
    if zmq.has("curve"):  # "auto": keys for kernels whose kernelspec supports them
        config["KernelManager"] = {"transport_encryption": "auto"}
    return config


def apply_server_defaults(c: Any) -> None:
    """Put ``server_defaults()`` into the traitlets config ``c`` wherever it sets nothing yet:
    what ``jupyter mlwidget`` does, for a plain ``jupyter server``. In a
    ``jupyter_server_config.py`` (Binder's ``postBuild`` writes one)::

        from mlwidget_server.launcher import apply_server_defaults
        apply_server_defaults(c)
    """
    for section, values in server_defaults().items():
        for key, value in values.items():
            if isinstance(value, dict):
                merged = dict(value)
                merged.update(c[section].get(key) or {})
                c[section][key] = merged
            elif key not in c[section]:
                c[section][key] = value


def quiet_upstream_warnings() -> None:
    """Voila's ``__init__`` turns on traitlets' DeprecationWarnings (which Python hides by
    default), and Voila's and jupyter_server's own config then print them on every start. Hide
    them again; they are for those projects to fix, not for a user to act on."""
    import voila  # noqa: F401 - its filter first, so that this one wins

    warnings.filterwarnings("ignore", category=DeprecationWarning, module="traitlets")


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
