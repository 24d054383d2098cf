"""A real Jupyter server with the mlwidget extension, pinned to one core, for the benchmarks."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m jupyter_server`` on core ``cpu`` with the store at ``store``."""

    def __init__(self, store: Path, cpu: int | None = 0, args: tuple[str, ...] = ()) -> None:
        self.store = store
        self.cpu = cpu  # None: not pinned
        self.args = args  # more command-line options (--MLWidgetApp.*)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.tmp = Path(tempfile.mkdtemp(prefix="mlwidget-bench-server-"))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Server:
        env = dict(os.environ)
        env.update(
            MLWIDGET_STORE=str(self.store),
            JUPYTER_RUNTIME_DIR=str(self.tmp / "runtime"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")])),
        )
        extensions = json.dumps({"mlwidget_server": True, "bench_ext": True}).replace(
            "true", "True"
        )
        cmd = [
            *(["taskset", "-c", str(self.cpu)] if shutil.which("taskset") and self.cpu is not None else []),
            sys.executable, "-m", "jupyter_server", "--allow-root", "--ip=127.0.0.1",
            f"--port={self.port}", "--ServerApp.port_retries=0", "--no-browser",
            f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={self.tmp}",
            f"--ServerApp.jpserver_extensions={extensions}", "--ServerApp.log_level=WARN",
            *self.args,
        ]  # fmt: skip
        self.log = open(self.tmp / "server.log", "wb")
        self.started = time.monotonic()  # when the process was spawned
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited: see {self.tmp / 'server.log'}")
            try:
                self.get("api/status")
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("jupyter server did not start in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- requests

    def request(
        self, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> bytes:
        req = urllib.request.Request(self.url + path, data=body, method="POST" if body else "GET")
        req.add_header("Authorization", f"token {TOKEN}")
        if content_type:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=600) as resp:
            return resp.read()

    def get(self, path: str) -> bytes:
        return self.request(path)

    # ---------------------------------------------------------------- memory

    def _status(self) -> dict[str, int]:
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
        return out

    def rss(self) -> int:
        return self._status()["VmRSS"]

    def reset_peak(self) -> bool:
        """Reset the kernel's peak-RSS counter (VmHWM); False where that is not allowed."""
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def peak(self) -> int:
        return self._status()["VmHWM"]
