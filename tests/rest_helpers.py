"""Helpers for the REST suites: requests through pytest-jupyter's ``jp_fetch`` and bodies;
and the one launcher of real ``jupyter_server`` subprocesses (and of Chromium) for the suites
that need a server out of process."""

from __future__ import annotations

import asyncio
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

import pytest
from conftest import GUIDE_OPTIONS, NOTEBOOKS, ROOT

TITANIC = NOTEBOOKS / "titanic.csv"


def titanic_server_config(store_dir: Path, titanic_csv: Path, **app: Any) -> dict:
    """pytest-jupyter server config: mlwidget_server enabled, the guide's ``titanic`` model,
    trained in the store before the server starts (a configured model that is not in the store
    yet trains at start-up as a job in a worker process, which tests/test_registry.py covers;
    here it would add a worker's start to every test)."""
    from mlwidget import MLModel

    MLModel("titanic", data=str(titanic_csv), store=store_dir, executor="thread", **GUIDE_OPTIONS)
    return {
        "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
        "MLWidgetApp": {
            "store_dir": str(store_dir),
            **app,
            "models": {"titanic": {"data": str(titanic_csv), **GUIDE_OPTIONS}},
        },
    }


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


def stored(store_dir: Path, name: str = "titanic") -> dict[str, bytes]:
    """Everything a user could tell apart of a stored model: its folder's files and their
    bytes (the lock file aside), with any model file a job staged and left behind. Equal
    before and after a refused request or a cancelled job."""
    folder = store_dir / name
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def assert_no_leak(text: str) -> None:
    assert "Traceback" not in text
    assert 'File "' not in text
    assert not re.search(r"(/tmp/|/work/|/root/|/home/|site-packages|\.py\b)", text), text


# --- real servers and browsers, shared by the subprocess and browser suites ------------------

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium, driven by Playwright
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
)


def launch_chromium(playwright: Any) -> Any:
    """Debian's chromium, headless, through a ``sync_playwright()`` handle."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)


def predict_the_guide_passenger(page: Any) -> None:
    """On a model page of the guide's Titanic model: fill the one-row form with the guide's
    passenger, submit it, and expect the answer (did not survive) with its probabilities."""
    from conftest import GUIDE_PASSENGER
    from playwright.sync_api import expect

    form = page.locator("#single-form")
    for name, value in GUIDE_PASSENGER.items():
        field = form.locator(f'[name="{name}"]')
        if field.evaluate("el => el.tagName") == "SELECT":
            field.select_option(str(value))
        else:
            field.fill(str(value))
    page.click("#single-submit")
    expect(page.locator("#single-result .prediction")).to_have_text("0")
    expect(page.locator("#single-result")).to_contain_text("Probabilities")


@contextlib.contextmanager
def chromium_page(url: str, timeout: float = 30_000) -> Iterator[tuple[Any, list[str]]]:
    """A headless chromium page opened at ``url``; yields it with the list its JavaScript
    errors go to (a test asserts it stays empty), and closes the browser on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.set_default_timeout(timeout)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            yield page, errors
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def project_pythonpath() -> str:
    """``PYTHONPATH`` that finds mlwidget and mlwidget_server in a plain checkout too (the
    installed package finds them anyway); kernels started by the server inherit it."""
    paths = [str(ROOT), str(ROOT / "server_extension"), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in paths if p)


@contextlib.contextmanager
def server_process(
    *,
    root: Path,
    env: dict[str, str],
    log: Path,
    extensions: tuple[str, ...] | None = None,
    python: str = sys.executable,
    cwd: Path | None = None,
    ready: str = "/api/status",
    stop_timeout: float = 15,
    args: tuple[str, ...] = (),
) -> Iterator[tuple[str, str]]:
    """``python -m jupyter_server`` (``python`` may be another venv's) on a free loopback port
    with a fresh token, serving ``root`` with exactly ``env``; ``extensions`` are enabled on the
    command line (``None``: no flag, the installed jupyter-config decides). Output goes to
    ``log``. Waits up to 60 s until ``ready`` answers with JSON, yields ``(url, token)`` (``url``
    without a trailing slash), and terminates (then kills) the server on exit."""
    port, token = free_port(), secrets.token_hex(16)
    cmd = [
        python, "-m", "jupyter_server", "--allow-root", "--no-browser",
        "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
    ]  # fmt: skip
    if extensions is not None:
        enabled = ", ".join(f'"{name}": True' for name in extensions)
        cmd.append(f"--ServerApp.jpserver_extensions={{{enabled}}}")
    cmd += args
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        request = urllib.request.Request(url + ready, headers={"Authorization": f"token {token}"})
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited ({proc.returncode}):\n{log.read_text()}")
            try:
                with urllib.request.urlopen(request, timeout=5) as reply:
                    json.load(reply)
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"jupyter server did not answer in 60 s:\n{log.read_text()}"
                    ) from None
                time.sleep(0.3)
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def jupyter_server(tmp: Path, store: Path, *args: str) -> Iterator[tuple[str, str]]:
    """A ``python -m jupyter_server`` subprocess on a free loopback port with the extension
    enabled and ``MLWIDGET_STORE=store`` (``args``: more command-line settings, such as
    ``--MLWidgetApp.cv_seconds=600``); yields ``(url, token)``, stops it on exit."""
    root = tmp / "root"
    root.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "MLWIDGET_STORE": str(store),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "PYTHONPATH": project_pythonpath(),
    }
    with server_process(
        root=root,
        env=env,
        log=tmp / "server.log",
        extensions=("mlwidget_server",),
        ready="/mlhandler/",
        args=args,
    ) as (url, token):
        yield url, token


async def wait_until_async(check: Any, within: float = 60.0, what: str = "the condition") -> None:
    """Wait for ``check()`` to hold, polling on the event loop (a bound, not a measurement)."""
    import time

    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {within:g} s"
        await asyncio.sleep(0.05)


async def settled(jp_fetch: Any, within: float = 120.0) -> None:
    """Wait until no model of the server has a job queued or running (a retrain's crossval job
    commits its cv_score after the retrain answers: compare stored state after this)."""
    import time

    deadline = time.monotonic() + within
    listing = (await call(jp_fetch, "mlhandler", "")).json()
    names = [m["name"] for m in listing["models"]]
    for name in names:
        while True:
            jobs = (await call(jp_fetch, "mlhandler", name, params={"_jobs": ""})).json()
            if not any(j["status"] in ("queued", "running") for j in jobs):
                break
            assert time.monotonic() < deadline, f"{name}'s jobs did not end within {within:g} s"
            await asyncio.sleep(0.05)
