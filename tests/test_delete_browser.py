"""The listing page in a real browser (Playwright + Debian's chromium) against a real server:
an owner's Delete button with its confirmation removes a model everywhere; the New model flow
with inflation.csv suggests no date as the target and reads its dates as numbers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from rest_helpers import jupyter_server, launch_chromium, needs_chromium

from mlwidget import MLModel
from mlwidget.store import Store

DATA = Path(__file__).parent / "data"
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    tmp = tmp_path_factory.mktemp("delete")
    (tmp / "store").mkdir()
    with jupyter_server(tmp, tmp / "store") as (url, token):
        yield url, token, tmp / "store"


def get(url: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_delete_from_the_listing_asks_then_removes_the_model(server) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, token, store = server
    MLModel("doomed", data=str(DATA / "iris.csv"), store=store, target_col="species")
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(f"{url}/mlhandler/?token={token}")
            row = page.locator('#models tr[data-name="doomed"]')
            asked: list[str] = []
            page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
            row.locator("button.delete-model").click()
            expect(row).to_be_visible()  # dismissed: nothing removed
            assert asked and "doomed" in asked[0] and "cannot be undone" in asked[0]
            assert Store(store).exists("doomed")
            page.once("dialog", lambda d: d.accept())
            row.locator("button.delete-model").click()
            expect(page.locator("#delete-result")).to_contain_text("Deleted doomed")
            expect(row).to_have_count(0)
            page.reload()
            expect(page.locator('#models tr[data-name="doomed"]')).to_have_count(0)
        finally:
            browser.close()
    assert not (store / "doomed").exists()
    assert get(f"{url}/mlhandler/doomed?_model", token)[0] == 404
    names = [m["name"] for m in get(f"{url}/mlhandler/", token)[1]["models"]]
    assert "doomed" not in names


def test_inflation_suggests_no_date_target_and_reads_dates_as_numbers(server) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, token, store = server
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{url}/mlhandler/?token={token}")
            page.set_input_files("#new-file", str(DATA / "inflation.csv"))
            expect(page.locator("#new-preview-table tbody tr")).to_have_count(10)
            expect(page.locator("#new-target")).not_to_have_value("index")
            expect(page.locator("#new-kind")).to_have_text("regressor")
            expect(page.locator("#new-dates")).to_have_value("index")
            page.click("#new-create")
            page.wait_for_url(f"{url}/mlhandler/inflation")
        finally:
            browser.close()
    code, info = get(f"{url}/mlhandler/inflation?_model", token)
    assert code == 200 and info["dates"] == ["index"] and info["target_col"] != "index"
    code, answer = get(f"{url}/mlhandler/inflation?Dp=0.01&R=0.08&index=1990-07-01", token)
    assert code == 200 and isinstance(answer[0], float), answer
