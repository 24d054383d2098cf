"""A real ``jupyter server`` with the voila and mlwidget_server extensions on a private store,
and Chromium pages that record every request they make: shared by the browser suites of the
dashboard's data flows, of explanations and of offline pages."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from conftest import NOTEBOOKS
from rest_helpers import project_pythonpath, server_process

TIMEOUT_MS = 120_000  # a bound on waits (a Voila kernel, a fit on a busy machine), never a measure


@dataclass
class Server:
    url: str
    token: str
    store: Path
    root: Path
    log: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def at(self, path: str) -> str:
        """``path`` on the server, logged in by the token."""
        sep = "&" if "?" in path else "?"
        return f"{self.url}/{path}{sep}token={self.token}"

    def dashboard(self) -> str:
        return self.at("voila/render/dashboard.ipynb")


@contextmanager
def voila_server(tmp: Path, voila: bool = True, **env: str) -> Iterator[Server]:
    """``python -m jupyter_server`` with mlwidget_server (and Voila, with notebooks/dashboard.ipynb
    in its root) on an empty store in ``tmp``; ``env``: more environment for it and its kernels."""
    root, store, runtime = tmp / "root", tmp / "store", tmp / "runtime"
    for folder in (root, store, runtime):
        folder.mkdir(parents=True, exist_ok=True)
    for name in ("dashboard.ipynb", "titanic.csv"):
        shutil.copy(NOTEBOOKS / name, root / name)
    environ = dict(
        os.environ,
        MLWIDGET_STORE=str(store),
        JUPYTER_RUNTIME_DIR=str(runtime),
        PYTHONPATH=project_pythonpath(),  # the Voila kernel inherits it
        **env,
    )
    extensions = ("voila.server_extension", "mlwidget_server") if voila else ("mlwidget_server",)
    log = tmp / "server.log"
    with server_process(root=root, env=environ, log=log, extensions=extensions, cwd=tmp) as (
        url,
        token,
    ):
        yield Server(url, token, store, root, log)


@dataclass
class Recorder:
    """Every URL a page asked for (requests the page makes, whatever their answer)."""

    local: str
    urls: list[str] = field(default_factory=list)

    def outside(self) -> list[str]:
        """The URLs that would have left the machine (not the local server, not data: or blob:)."""
        return [
            u
            for u in self.urls
            if not u.startswith(self.local + "/") and not u.startswith(("data:", "blob:"))
        ]


def recording_page(browser, server: Server, viewport: dict | None = None):
    """A new page that records its requests (``page.recorder``) and never lets one leave the
    machine: anything but the local server is aborted, after it is recorded."""
    context = browser.new_context(viewport=viewport or {"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    recorder = Recorder(server.url)
    page.on("request", lambda request: recorder.urls.append(request.url))
    # the kernel's websocket: ws://127.0.0.1:... is the local server too
    page.on("websocket", lambda ws: recorder.urls.append("http" + ws.url.removeprefix("ws")))
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(server.url + "/")
            else route.abort("blockedbyclient")
        ),
    )
    page.recorder = recorder
    return page
