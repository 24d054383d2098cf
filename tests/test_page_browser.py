"""The default page in a real browser (Playwright + Debian's chromium) against a real server."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER, ROOT
from rest_helpers import TITANIC

from mlwidget import MLModel

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A ``python -m jupyter_server`` subprocess serving a store with the guide's model."""
    tmp = tmp_path_factory.mktemp("browser")
    store, root = tmp / "store", tmp / "root"
    root.mkdir()
    MLModel("titanic", data=str(TITANIC), store=store, **GUIDE_OPTIONS)
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
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 -- closed in teardown
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited: {(tmp / 'server.log').read_text()}")
            try:
                request = urllib.request.Request(
                    f"{url}/mlhandler/", headers={"Authorization": f"token {token}"}
                )
                with urllib.request.urlopen(request, timeout=5) as reply:
                    names = [m["name"] for m in json.load(reply)["models"]]
                    assert names == ["titanic"], names
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
        log.close()


def test_default_page_predicts_one_row_and_a_file(server: tuple[str, str]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, token = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/mlhandler/titanic?token={token}")
            expect(page.locator("h1")).to_have_text("titanic")

            # single predict: the guide's passenger did not survive
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

            # bulk predict: upload the CSV, see the result table and the download link
            page.set_input_files("#bulk-file", str(TITANIC))
            page.click("#bulk-form button[type=submit]")
            expect(page.locator("#bulk-result table tbody tr")).to_have_count(200)
            expect(page.locator("#bulk-result")).to_contain_text("Showing 200 of 891 rows")
            expect(page.locator("#bulk-result th.target")).to_have_text("Survived")
            expect(page.locator("#bulk-download")).to_be_visible()
            with page.expect_download() as download:
                page.click("#bulk-download")
            assert download.value.suggested_filename == "titanic-predictions.csv"
            assert Path(download.value.path()).read_text().startswith("PassengerId,")
            assert not errors, errors
        finally:
            browser.close()
