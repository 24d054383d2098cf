"""binder/ works: a fresh virtual environment built from binder/ alone serves the REST API and
the Voila dashboard, as mybinder.org would.

Like repo2docker, from the repository root: ``pip install -r binder/requirements.txt``, then
``binder/postBuild``; then a plain ``jupyter server`` (no extension flags: the installed
jupyter-config files must enable mlwidget_server and Voila) with the repository as its root.
pip's cache (warm after .ci/setup) makes the install take about half a minute.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from conftest import GUIDE_PASSENGER, ROOT

BINDER = ROOT / "binder"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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

    port, token = free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}/"
    auth = {"Authorization": f"token {token}"}
    log = tmp_path / "server.log"
    cmd = [
        python,
        "-m",
        "jupyter_server",
        "--allow-root",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={ROOT}",  # Binder serves the repository root
    ]
    with open(log, "wb") as server_log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=server_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"server exited ({proc.returncode}):\n{log.read_text()}"
            try:
                if requests.get(url + "api/status", headers=auth, timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"no answer in 60 s:\n{log.read_text()}"
            time.sleep(0.3)

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
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
