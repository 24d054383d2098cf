"""binder/ works: a fresh virtual environment built from binder/ alone serves the REST API and
the Voila dashboard, as mybinder.org would.

Like repo2docker, from the repository root: ``pip install -r binder/requirements.txt``, then
``binder/postBuild``; then a plain ``jupyter server`` (no extension flags: the installed
jupyter-config files must enable mlwidget_server and Voila) with the repository as its root.
pip's cache (warm after .ci/setup) makes the install take about half a minute.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import requests
from conftest import GUIDE_PASSENGER, ROOT
from rest_helpers import server_process

BINDER = ROOT / "binder"


def run(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_binder_files() -> None:
    assert os.access(BINDER / "postBuild", os.X_OK), "repo2docker runs binder/postBuild directly"
    post_build = (BINDER / "postBuild").read_text()
    assert post_build.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in post_build
    requirements = (BINDER / "requirements.txt").read_text().splitlines()
    assert "." in [line.strip() for line in requirements]  # the project itself
    readme = (ROOT / "README.md").read_text()
    assert "?labpath=notebooks/titanic.ipynb" in readme
    assert "?urlpath=voila/render/notebooks/dashboard.ipynb" in readme
    for path in ("notebooks/titanic.ipynb", "notebooks/dashboard.ipynb"):
        assert (ROOT / path).is_file(), path


def test_fresh_environment_from_binder_serves_rest_and_dashboard(tmp_path: Path) -> None:
    venv, store, runtime = tmp_path / "venv", tmp_path / "store", tmp_path / "runtime"
    runtime.mkdir()
    base_python = getattr(sys, "_base_executable", "") or shutil.which("python3") or "python3"
    bin_dir = venv / "bin"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "JUPYTER_PATH")
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        MLWIDGET_STORE=str(store),
        JUPYTER_RUNTIME_DIR=str(runtime),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    run([base_python, "-m", "venv", str(venv)], env, 120)
    python = str(bin_dir / "python")
    # --no-compile halves the install time; only the modules imported below get compiled.
    install = [
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-compile",
        "-r",
        "binder/requirements.txt",
    ]
    run(install, env, 600)
    out = run([str(BINDER / "postBuild")], env, 300).stdout
    assert "mlwidget_server and voila are enabled" in out
    assert "created model 'titanic'" in out

    # The project is installed into the new venv (not linked to the work tree), demo data included.
    installed = list(venv.glob("lib/python*/site-packages/mlwidget_server/demo/titanic.csv"))
    assert installed, "mlwidget_server (with demo/titanic.csv) is not installed in the venv"

    log = tmp_path / "server.log"
    # Binder serves the repository root; no extension flags (see the module docstring).
    server = server_process(python=python, root=ROOT, env=env, log=log, cwd=ROOT, stop_timeout=20)
    with server as (base, token):
        url = base + "/"
        auth = {"Authorization": f"token {token}"}

        # The REST endpoint serves the demo model that postBuild trained.
        reply = requests.get(
            url + "mlhandler/titanic", params=GUIDE_PASSENGER, headers=auth, timeout=60
        )
        assert reply.status_code == 200, (reply.text, log.read_text())
        assert reply.json() == [0]

        # The Voila dashboard, at the path the README's Binder link opens.
        page = requests.get(
            url + "voila/render/notebooks/dashboard.ipynb", headers=auth, timeout=120
        )
        assert page.status_code == 200, log.read_text()
        assert "application/vnd.jupyter.widget-view+json" in page.text
        assert "Traceback" not in page.text and "There was an error" not in page.text
        # postBuild's kernel hygiene is in the environment's config: the page carries the _xsrf
        # cookie its shutdown on close needs, and idle kernels nobody is connected to are culled
        assert "_xsrf" in page.cookies, page.headers
        assert "Culling kernels with idle durations > 300 seconds" in log.read_text()
