"""Helpers for the REST suites: requests through pytest-jupyter's ``jp_fetch`` and bodies."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import NOTEBOOKS, ROOT

TITANIC = NOTEBOOKS / "titanic.csv"


@dataclass
class Reply:
    code: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


async def call(
    jp_fetch: Any,
    *parts: str,
    method: str = "GET",
    params: Any = None,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Reply:
    """One request; never raises on an HTTP error status (the reply carries it)."""
    if body is None and method in ("POST", "PUT"):
        body = b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    kwargs.setdefault("request_timeout", 120)
    response = await jp_fetch(
        *parts,
        method=method,
        params=params,
        body=body,
        headers=dict(headers or {}),
        raise_error=False,
        **kwargs,
    )
    return Reply(response.code, response.headers, response.body or b"")


def multipart(
    files: list[tuple[str, str, bytes]],
    fields: dict[str, str] | None = None,
    content_type: str | None = "application/octet-stream",
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body, as ``curl -F`` sends it (or, with ``content_type=None``,
    ``requests.post(files=...)``: no Content-Type per file). ``files`` are
    ``(field, filename, content)``."""
    part_type = f"Content-Type: {content_type}\r\n" if content_type else ""
    boundary = uuid.uuid4().hex
    chunks: list[bytes] = []
    for key, value in (fields or {}).items():
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        )
    for field, filename, content in files:
        chunks.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                f'filename="{filename}"\r\n{part_type}\r\n'
            ).encode()
            + content
            + b"\r\n"
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def assert_clean_error(reply: Reply, status: int, *words: str) -> dict:
    """The reply is a JSON error with this status whose message names ``words``, and it
    carries no traceback and no server path."""
    assert reply.code == status, (reply.code, reply.text)
    assert reply.headers.get("Content-Type", "").startswith("application/json")
    data = reply.json()
    assert isinstance(data.get("error"), str) and data["error"], data
    for word in words:
        assert word.lower() in data["error"].lower(), (word, data["error"])
    assert_no_leak(reply.text)
    return data


def assert_no_leak(text: str) -> None:
    assert "Traceback" not in text
    assert 'File "' not in text
    assert not re.search(r"(/tmp/|/work/|/root/|/home/|site-packages|\.py\b)", text), text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def jupyter_server(tmp: Path, store: Path) -> Iterator[tuple[str, str]]:
    """A ``python -m jupyter_server`` subprocess on a free loopback port with the extension
    enabled and ``MLWIDGET_STORE=store``; yields ``(url, token)``, stops it on exit."""
    root = tmp / "root"
    root.mkdir(exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "MLWIDGET_STORE": str(store),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        # the installed package finds mlwidget_server too; this keeps a plain checkout working
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "server_extension"), str(ROOT), os.environ.get("PYTHONPATH", "")]
        ),
    }
    cmd = [
        sys.executable, "-m", "jupyter_server", "--allow-root", "--no-browser",
        "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        '--ServerApp.jpserver_extensions={"mlwidget_server": True}',
    ]  # fmt: skip
    log_path = tmp / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            request = urllib.request.Request(
                f"{url}/mlhandler/", headers={"Authorization": f"token {token}"}
            )
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"jupyter server exited: {log_path.read_text()}")
                try:
                    with urllib.request.urlopen(request, timeout=5) as reply:
                        json.load(reply)
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
            yield url, token
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
