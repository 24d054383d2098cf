"""MLServer (Seldon's V2 server, scikit-learn runtime) beside mlwidget, for benchmarks/v2.py.

MLServer is never a dependency of mlwidget: it runs from a scratch virtualenv made by hand,

    python3 -m venv /tmp/mlserver-venv
    /tmp/mlserver-venv/bin/pip install mlserver==1.7.1 mlserver-sklearn==1.7.1 uvloop==0.21.0

(uvloop 0.22+ breaks MLServer 1.7.1's inference workers: "There is no current event loop",
SeldonIO/MLServer#2286). The venv needs the scikit-learn version that fitted the pipeline.

``MLServer(venv, pipeline, workers)`` writes the fitted pipeline as ``model.joblib`` with a
``model-settings.json`` for the sklearn runtime (content type ``pd``: one input per column, as
a DataFrame, the same bodies mlwidget reads), and ``mlserver start`` on core 0 like mlwidget's
server. ``workers`` is MLServer's ``parallel_workers``: 1 (its default, inference in a worker
process) or 0 (inference in the server process).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from server import free_port


class MLServer:
    def __init__(self, venv: Path, pipeline: Any, workers: int = 1, cpu: int = 0) -> None:
        import joblib

        self.venv, self.workers, self.cpu = Path(venv), workers, cpu
        self.tmp = Path(tempfile.mkdtemp(prefix="mlwidget-bench-mlserver-"))
        model = self.tmp / "titanic"
        model.mkdir()
        joblib.dump(pipeline, model / "model.joblib")
        settings = {
            "name": "titanic",
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "1", "content_type": "pd"},
        }
        (model / "model-settings.json").write_text(json.dumps(settings))
        self.port = free_port()
        server = {
            "host": "127.0.0.1",
            "http_port": self.port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "parallel_workers": workers,
        }
        (self.tmp / "settings.json").write_text(json.dumps(server))
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None

    @property
    def label(self) -> str:
        where = "a worker process, its default" if self.workers else "the server process"
        return f"MLServer (parallel_workers={self.workers}: {where})"

    def version(self) -> str:
        out = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", "import mlserver; print(mlserver.__version__)"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return out.stdout.strip()

    def start(self, timeout: float = 120) -> MLServer:
        exe = self.venv / "bin" / "mlserver"
        if not exe.exists():
            raise RuntimeError(f"{exe} not found: install MLServer in that venv (see above)")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        cmd = [
            *(["taskset", "-c", str(self.cpu)] if shutil.which("taskset") else []),
            str(exe), "start", ".",
        ]  # fmt: skip
        self.log = open(self.tmp / "mlserver.log", "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=self.tmp, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlserver exited: see {self.tmp / 'mlserver.log'}")
            try:
                ready = requests.get(self.url + "v2/models/titanic/ready", timeout=2)
                if ready.status_code == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"mlserver not ready in {timeout} s: see {self.tmp / 'mlserver.log'}")

    def stop(self) -> None:
        """Stop MLServer and its worker processes (its own process group)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, 9)  # its inference workers, if any are left
            except ProcessLookupError:
                pass
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
