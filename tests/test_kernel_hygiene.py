"""Dashboard views leave no kernels behind: `jupyter mlwidget` as a user starts it, the Voila
dashboard opened and closed in Chromium, the server's kernels counted with `/api/kernels`.

Two paths: a page that closes shuts its kernel down at once (Voila's shutdown request, which
needs the `_xsrf` cookie the launcher's prelaunch hook sets), and a page that dies without
saying so (no `beforeunload`) leaves an idle kernel nobody is connected to, which the server
culls. An open page keeps its kernel however long it idles.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from conftest import GUIDE_PASSENGER, ROOT
from rest_helpers import free_port, needs_chromium
from sync_browser import jp_asyncio_loop, jp_server_cleanup  # noqa: F401

JUPYTER = Path(sys.executable).with_name("jupyter")
TIMEOUT_MS = 90_000

pytestmark = needs_chromium


@dataclass
class Served:
    proc: subprocess.Popen
    log: Path
    lines: list[str] = field(default_factory=list)

    def printed(self, label: str) -> str:
        match = re.search(rf"^\s*{re.escape(label)}:\s+(\S+)\s*$", "".join(self.lines), re.M)
        assert match, f"{label!r} not printed:\n{''.join(self.lines)}"
        return match.group(1)

    @property
    def api(self) -> str:
        return self.printed("REST endpoint").rsplit("/mlhandler/", 1)[0] + "/api"

    def models(self) -> dict[str, dict]:
        """The server's kernels by id, as ``/api/kernels`` shows them (``last_activity``,
        ``connections``, ...)."""
        auth = {"Authorization": f"token {self.printed('Token')}"}
        reply = requests.get(f"{self.api}/kernels", headers=auth, timeout=60)
        reply.raise_for_status()
        return {kernel["id"]: kernel for kernel in reply.json()}

    def kernels(self) -> list[str]:
        return list(self.models())

    def wait_for(self, check: Callable[[list[str]], bool], seconds: float = 120) -> list[str]:
        """The kernel ids once ``check(ids)`` holds; fails after ``seconds`` (a bound on a
        kernel that never goes, not a measurement)."""
        deadline = time.monotonic() + seconds
        while True:
            ids = self.kernels()
            if check(ids):
                return ids
            if time.monotonic() > deadline:
                pytest.fail(f"kernels after {seconds} s: {ids}\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)


def last_activity(kernel: dict) -> datetime.datetime:
    return datetime.datetime.fromisoformat(kernel["last_activity"])


@contextlib.contextmanager
def mlwidget(tmp_path: Path, *extra: str) -> Iterator[Served]:
    """``jupyter mlwidget`` from the repository (so it serves notebooks/dashboard.ipynb) with a
    private store and runtime dir; yields once it has printed its URLs, stops it on exit."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    # a data dir of its own: a fresh signature store (are the bundled notebooks trusted?)
    env = dict(
        os.environ, JUPYTER_RUNTIME_DIR=str(runtime), JUPYTER_DATA_DIR=str(tmp_path / "data")
    )
    env.pop("MLWIDGET_STORE", None)
    log = tmp_path / "server.log"
    args = [f"--port={free_port()}", f"--store={tmp_path / 'store'}", *extra]
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [str(JUPYTER), "mlwidget", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    served = Served(proc, log)
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            served.lines.append(line)
            if line.startswith("Press Ctrl-C"):
                done.set()
        done.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not done.wait(120) or proc.poll() is not None:
            pytest.fail(f"no URLs printed in 120 s:\n{''.join(served.lines)}\n{log.read_text()}")
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def open_dashboard(context, served: Served):
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(served.printed("Dashboard (Voila)"))
    page.locator(".mlwidget-app").wait_for()  # the kernel ran the notebook: the forms are up
    return page


def fill_passenger(page) -> None:
    for name, value in GUIDE_PASSENGER.items():
        box = page.locator(f".mlwidget-input-{name}")
        if box.locator("select").count():
            box.locator("select").select_option(label=str(value))
        else:
            box.locator("input").fill(str(value))
            box.locator("input").press("Tab")


def test_closing_the_dashboard_again_and_again_leaves_no_kernel(browser, tmp_path: Path) -> None:
    with mlwidget(tmp_path) as served:
        context = browser.new_context()
        try:
            page = open_dashboard(context, served)
            (kernel,) = served.kernels()  # this page's, and no other
            page.close(run_before_unload=True)  # as closing the tab does
            served.wait_for(lambda ids, k=kernel: k not in ids)
            assert served.kernels() == []

            # again, in the same context: each page below finds what the one before left
            # (cookies, state), and each close of one leaves no kernel either.
            # a reload is a close and an open: the old page's kernel goes, the new one's stays
            page = open_dashboard(context, served)
            (before,) = served.kernels()
            page.reload()
            page.locator(".mlwidget-app").wait_for()
            (after,) = served.wait_for(lambda ids: before not in ids and len(ids) == 1)
            assert after != before
            page.close(run_before_unload=True)
            served.wait_for(lambda ids: ids == [])

            # The shutdown still needs the XSRF token: the login cookie alone (what a page on
            # another site could make the browser send) is refused, and the kernel keeps running.
            page = open_dashboard(context, served)
            (kernel,) = served.kernels()
            cookies = {c["name"]: c["value"] for c in context.cookies()}
            assert "_xsrf" in cookies
            login = {k: v for k, v in cookies.items() if k != "_xsrf"}
            shutdown = f"{served.api.removesuffix('/api')}/voila/api/shutdown/{kernel}"
            forged = requests.post(shutdown, cookies=login, data={"_xsrf": ""}, timeout=30)
            assert forged.status_code == 403
            assert served.kernels() == [kernel]
            page.close(run_before_unload=True)
            served.wait_for(lambda ids: ids == [])
        finally:
            context.close()
    log = served.log.read_text()
    # the backstop is on by default: idle kernels nobody is connected to go after 5 minutes
    assert "Culling kernels with idle durations > 300 seconds" in log
    # the only shutdown refused was the forged one
    assert set(re.findall(r"403 POST \S*/voila/api/shutdown/([\w-]+)", log)) == {kernel}
    # the other noise of a start, gone: traitlets' deprecations, TCP without encryption, trust
    for noise in ("DeprecationWarning", "without encryption", "is not trusted"):
        assert noise not in log, noise


def test_idle_kernels_nobody_is_connected_to_are_culled(browser, tmp_path: Path) -> None:
    """The backstop: a page that vanishes without its ``beforeunload`` (a crashed tab, a lost
    network) sends no shutdown; its kernel is culled once idle with nobody connected. An open
    page's kernel is connected, so it stays, and the page keeps working."""
    culling = [
        "--MappingKernelManager.cull_idle_timeout=4",
        "--MappingKernelManager.cull_interval=1",
    ]
    from playwright.sync_api import expect

    with mlwidget(tmp_path, *culling) as served:
        context = browser.new_context()
        try:
            kept = open_dashboard(context, served)
            (open_kernel,) = served.kernels()
            gone = open_dashboard(context, served)
            before = served.models()
            (vanished,) = [k for k in before if k != open_kernel]
            gone.close(run_before_unload=False)  # no beforeunload: no shutdown request
            served.wait_for(lambda ids: vanished not in ids)  # culled (the log says so, below)
            # The open page's kernel has idled at least as long as the culled one (its last
            # activity is no later), and the culler looks at every kernel on each pass: the
            # pass that culled the vanished page's kernel kept this one, connected.
            after = served.models()
            assert list(after) == [open_kernel]
            kept_idle = last_activity(after[open_kernel])
            assert kept_idle == last_activity(before[open_kernel])
            assert kept_idle <= last_activity(before[vanished])
            assert after[open_kernel]["connections"] >= 1
            fill_passenger(kept)
            kept.locator(".mlwidget-predict-button").click()
            expect(kept.locator(".mlwidget-predict .mlwidget-prediction")).to_have_text("0")
        finally:
            context.close()
    log = served.log.read_text()
    assert re.search(rf"Culling '\w+' kernel .*{vanished}", log)
    assert f"shutdown/{vanished}" not in log  # culled, not shut down by the page
