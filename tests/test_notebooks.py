"""notebooks/titanic.ipynb, executed top to bottom by nbclient against a real Jupyter server.

The server is a ``python -m jupyter_server`` subprocess with the mlwidget and Voila extensions;
it and the notebook's kernel share a private model store (MLWIDGET_STORE) and runtime directory
(JUPYTER_RUNTIME_DIR), so the notebook finds the server with ``list_running_servers()`` the way
it does under ``jupyter mlwidget`` or on Binder.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import requests
from conftest import NOTEBOOKS, ROOT
from nbclient import NotebookClient

TUTORIAL = NOTEBOOKS / "titanic.ipynb"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def shared_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Store and runtime dirs shared by the server and the kernel (which inherits os.environ)."""
    store, runtime = tmp_path / "store", tmp_path / "runtime"
    store.mkdir()
    runtime.mkdir()
    monkeypatch.setenv("MLWIDGET_STORE", str(store))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    # Work even when the project is not pip-installed (the kernel inherits this too).
    paths = [str(ROOT), str(ROOT / "server_extension"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    return dict(os.environ)


@pytest.fixture
def server(tmp_path: Path, shared_env: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    """A real Jupyter server with mlwidget_server; yields its URL and auth header once it answers."""
    root = tmp_path / "root"
    root.mkdir()
    port, token = free_port(), secrets.token_hex(16)
    log = tmp_path / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--allow-root",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        '--ServerApp.jpserver_extensions={"mlwidget_server": True, "voila.server_extension": True}',
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=shared_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    auth = {"Authorization": f"token {token}"}
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter server exited ({proc.returncode}):\n{log.read_text()}")
            try:
                if requests.get(url + "api/status", headers=auth, timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter server did not answer in 60 s:\n{log.read_text()}")
            time.sleep(0.3)
        yield url, auth
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def outputs(cell: nbformat.NotebookNode) -> str:
    """A cell's stream and text/plain outputs as one string."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "\n".join(parts)


def test_tutorial_runs_against_a_real_server(tmp_path: Path, server: tuple[str, dict]) -> None:
    url, auth = server
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(TUTORIAL, work / TUTORIAL.name)
    shutil.copy(NOTEBOOKS / "titanic.csv", work / "titanic.csv")
    nb = nbformat.read(work / TUTORIAL.name, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        startup_timeout=60,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, if a cell fails
    nbformat.write(nb, tmp_path / "executed.ipynb")  # kept for a look when something is off

    cells = [c for c in nb.cells if c.cell_type == "code"]
    text = "\n".join(outputs(c) for c in cells)
    assert "Traceback" not in text
    # the guide's passenger, from Python and from REST
    assert "guide passenger: [0]" in text
    assert text.count("guide passenger: [0]") == 2, text
    # the REST section found this test's server (not some other one) through the runtime dir
    assert f"REST endpoint: {url}mlhandler/tutorial" in text
    # every REST answer equals the Python one
    last_checks = next(outputs(c) for c in reversed(cells) if "REST answers match" in outputs(c))
    assert "DIFFERENT" not in last_checks, last_checks
    assert "REST answers match Python: 10 of 10" in last_checks, last_checks
    # errors are shown to the reader the way the API gives them
    assert "404" in text and "has no fitted estimator" in text
    assert "log_loss" in text
    # the last cell shows the widget UI
    data = cells[-1].outputs[-1].get("data", {})
    assert "application/vnd.jupyter.widget-view+json" in data, cells[-1].outputs
    # the server answers from the store the kernel wrote: what the last cell appended is there
    info = requests.get(f"{url}mlhandler/tutorial?_model", headers=auth, timeout=30).json()
    assert info["model"] == "LogisticRegression" and info["rows"] == 891, info
