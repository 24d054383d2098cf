"""No page of mlwidget asks another host for anything: the model page (with a prediction and
an explanation), the listing, the API page and the Voila dashboard (every tab) are loaded in
Chromium against a real server, every request they make is recorded (and any that would leave
the machine is stopped), and the recording holds none outside the local server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import GUIDE_OPTIONS, NOTEBOOKS
from rest_helpers import launch_chromium, needs_chromium, predict_the_guide_passenger
from sync_browser import jp_asyncio_loop, jp_server_cleanup  # noqa: F401
from voila_helpers import Server, recording_page, voila_server

from mlwidget import MLModel

pytestmark = needs_chromium

# each tab of the dashboard, and something it shows once built
TABS = {
    "Predict": ".mlwidget-predict-button",
    "Upload": ".mlwidget-upload-file",
    "Editor": ".mlwidget-editor-class",
    "Summary": ".mlwidget-summary .mlwidget-plot-importance",
    "History": ".mlwidget-history-panel .mlwidget-version-row",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("offline")
    MLModel("titanic", data=str(NOTEBOOKS / "titanic.csv"), store=tmp / "store", **GUIDE_OPTIONS)
    with voila_server(tmp) as srv:
        yield srv


def test_pages_and_the_dashboard_make_no_request_outside_the_machine(server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = recording_page(browser, server)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            page.goto(server.at("mlhandler/titanic"))
            predict_the_guide_passenger(page)
            page.click("#explain-submit")
            page.locator("#explain-result svg.waterfall").wait_for()
            page.goto(server.at("mlhandler/"))
            expect(page.locator('#models tr[data-name="titanic"]')).to_be_visible()
            page.goto(server.at("mlhandler/titanic?_openapi&_format=html"))
            expect(page.locator("h1")).to_have_text("titanic · API")
            pages = len(page.recorder.urls)

            page.goto(server.dashboard())
            page.locator(".mlwidget-app").wait_for()
            for tab, shows in TABS.items():  # each tab builds its form when first opened
                page.get_by_role("tab", name=tab).click()
                expect(page.locator(shows).first).to_be_visible()
            recorded = page.recorder
        finally:
            browser.close()
    assert not errors, errors
    assert any("_action=explain" in u for u in recorded.urls[:pages])
    # the dashboard loaded Voila's scripts, its widgets and a kernel: all from the server
    assert any("/voila/" in u for u in recorded.urls[pages:])
    assert any("/api/kernels/" in u for u in recorded.urls[pages:])
    assert recorded.outside() == []
