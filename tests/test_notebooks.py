"""notebooks/titanic.ipynb, executed top to bottom by nbclient against a real Jupyter server.

The server is a ``python -m jupyter_server`` subprocess with the mlwidget and Voila extensions;
it and the notebook's kernel share a private model store (MLWIDGET_STORE) and runtime directory
(JUPYTER_RUNTIME_DIR), so the notebook finds the server with ``list_running_servers()`` the way
it does under ``jupyter mlwidget`` or on Binder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import requests
from conftest import NOTEBOOKS
from nbclient import NotebookClient
from rest_helpers import project_pythonpath, server_process

TUTORIAL = NOTEBOOKS / "titanic.ipynb"


@pytest.fixture
def shared_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Store and runtime dirs shared by the server and the kernel (which inherits os.environ)."""
    store, runtime = tmp_path / "store", tmp_path / "runtime"
    store.mkdir()
    runtime.mkdir()
    monkeypatch.setenv("MLWIDGET_STORE", str(store))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("PYTHONPATH", project_pythonpath())  # the kernel inherits this too
    return dict(os.environ)


@pytest.fixture
def server(tmp_path: Path, shared_env: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    """A real Jupyter server with mlwidget_server; yields its URL and auth header once it answers."""
    root = tmp_path / "root"
    root.mkdir()
    with server_process(
        root=root,
        env=shared_env,
        log=tmp_path / "server.log",
        extensions=("mlwidget_server", "voila.server_extension"),
    ) as (url, token):
        yield url + "/", {"Authorization": f"token {token}"}


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
    # the tutorial ends clean: the model serves what it holds (no red "stale" under the widget)
    assert not info["stale"], info["stale_reasons"]
    assert info["fitted"]["model"] == "LogisticRegression"
    # the guide's misspelled SibSb is shown where the tutorial creates the guide's model, with
    # the warning it earns; the tutorial's last configuration has it no more
    assert "SibSb" in text and "SibSb" not in " ".join(info["warnings"]), info["warnings"]
