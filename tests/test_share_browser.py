"""Roles on the model page and its Share panel (issue 28), in a real browser (Playwright + Debian's
chromium) against a real server: the owner makes a key in the Share panel, reads it once and
revokes another; a key-holder's page shows its role and offers only what the role may do. And
the dashboard's History tab (driven in Python) says who trained each version."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER
from rest_helpers import (
    CHROMIUM,
    TITANIC,
    jupyter_server,
    launch_chromium,
    predict_the_guide_passenger,
)

from mlwidget import MLModel

browser_only = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """A ``python -m jupyter_server`` subprocess serving a store with the guide's model (and a
    second one, ``audit``, that a key retrains)."""
    tmp = tmp_path_factory.mktemp("share")
    store = tmp / "store"
    MLModel("titanic", data=str(TITANIC), store=store, **GUIDE_OPTIONS)
    MLModel("audit", data=str(TITANIC), store=store, **GUIDE_OPTIONS)
    with jupyter_server(tmp, store) as (url, token):
        yield url, token, store


def predict(url: str, key: str) -> requests.Response:
    return requests.get(
        f"{url}/mlhandler/titanic",
        params=GUIDE_PASSENGER,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def new_page(browser: Any, key: str | None = None, origin: str | None = None) -> Any:
    """A page in its own context: with a key, every request it makes sends
    ``Authorization: Bearer <key>`` (how a program's browser, or an extension, sends one)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    context = browser.new_context(extra_http_headers=headers)
    if origin:
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
    page = context.new_page()
    page.set_default_timeout(30_000)
    return page


@browser_only
def test_owner_shares_a_key_once_revokes_another_and_the_viewer_sees_a_viewer_s_page(
    server: tuple[str, str, Path],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, token, store = server
    old = MLModel("titanic", store=store).share(role="viewer", label="old app")
    assert predict(url, old["key"]).json() == [0]  # it works, until it is revoked below

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = new_page(browser, origin=url)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/mlhandler/titanic?token={token}")
            # the owner: told so, with every control and the Share panel
            expect(page.locator("#role")).to_have_text("owner")
            expect(page.locator("#retrain-section")).to_be_visible()
            expect(page.locator("#delete-model")).to_be_visible()
            expect(page.locator("#share-section")).to_be_visible()
            old_row = page.locator("#share-table tr.key-row", has_text="old app")
            expect(old_row.locator(".key-status")).to_have_text("active")
            expect(old_row.locator(".key-role")).to_have_text("viewer")

            # create a viewer key: its text, shown once, with a copy button
            page.select_option("#share-role", "viewer")
            page.select_option("#share-expires", "7d")
            page.fill("#share-label", "sales app")
            page.click("#share-create")
            expect(page.locator("#share-key")).to_have_text(
                re.compile(r"^mlw_[0-9a-f]{12}_\S{20,}$")
            )
            key = page.locator("#share-key").text_content() or ""
            expect(page.locator("#share-once")).to_contain_text("will not be shown again")
            expect(page.locator("#share-new-what")).to_contain_text("'sales app', viewer")
            page.click("#share-copy")
            expect(page.locator("#share-copied")).to_have_text("Copied.")
            assert page.evaluate("navigator.clipboard.readText()") == key
            # listed (without its text) with its role, status and expiry
            new_row = page.locator("#share-table tr.key-row", has_text="sales app")
            expect(new_row.locator(".key-role")).to_have_text("viewer")
            expect(new_row.locator(".key-status")).to_have_text("active")
            assert key not in (page.locator("#share-keys").inner_text())
            assert predict(url, key).json() == [0]  # the key predicts

            # revoke the old one, after a confirmation
            questions: list[str] = []

            def confirm(dialog: Any) -> None:
                questions.append(dialog.message)
                dialog.accept()

            page.once("dialog", confirm)
            old_row.locator("button.revoke").click()
            expect(old_row.locator(".key-status")).to_have_text("revoked")
            expect(old_row.locator("button.revoke")).to_have_count(0)
            expect(page.locator("#share-keys-result")).to_contain_text("Revoked key 'old app'")
            assert questions and "Revoke key 'old app'" in questions[0], questions
            refused = predict(url, old["key"])
            assert refused.status_code == 403 and "revoked" in refused.json()["error"]

            # the key leaves the page: Done, and it is in no page load again
            page.click("#share-done")
            expect(page.locator("#share-new")).to_be_hidden()
            page.reload()
            expect(new_row.locator(".key-status")).to_have_text("active")
            assert key not in page.content()
            assert not errors, errors

            # the viewer, with the key from the Share panel: its role, and no control it may
            # not use (Retrain, Score/Append, parameters, Delete, downloads, Share)
            viewer = new_page(browser, key=key)
            viewer.on("pageerror", lambda exc: errors.append(str(exc)))
            viewer.goto(f"{url}/mlhandler/titanic")
            expect(viewer.locator("h1")).to_have_text("titanic")
            expect(viewer.locator("#role")).to_have_text("viewer")
            expect(viewer.locator("#role-who")).to_contain_text("sales app")
            for hidden in (
                "#retrain-section", "#retrain-submit", "#score-section", "#model-section",
                "#delete-model", "#delete-cache", "#download-model", "#download-data",
                "#share-section", "#link-new", "#link-versions",
            ):  # fmt: skip
                expect(viewer.locator(hidden)).to_have_count(0)
            expect(viewer.get_by_role("button", name="Retrain")).to_have_count(0)
            expect(viewer.get_by_role("button", name="Delete the fitted model")).to_have_count(0)
            # what a viewer may do still works: predict one row, with the audit of the model
            expect(viewer.locator("#audit")).to_contain_text("trained by owner")
            predict_the_guide_passenger(viewer)
            assert not errors, errors
        finally:
            browser.close()


@browser_only
def test_a_trainer_s_page_offers_retrain_but_nothing_of_the_owner_s(
    server: tuple[str, str, Path],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _, store = server
    key = MLModel("titanic", store=store).share(role="trainer", label="nightly")["key"]
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = new_page(browser, key=key)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/mlhandler/titanic")
            expect(page.locator("#role")).to_have_text("trainer")
            expect(page.locator("#retrain-submit")).to_be_visible()
            expect(page.locator("#model-section")).to_be_visible()
            expect(page.locator("#link-versions")).to_be_visible()
            # the parameters form is filled from the model's info
            expect(page.locator('#params input[name="C"]')).to_have_value("1")
            for owners in (
                "#delete-model", "#delete-cache", "#download-model", "#download-mlflow",
                "#download-data", "#share-section",
            ):  # fmt: skip
                expect(page.locator(owners)).to_have_count(0)
            assert not errors, errors
        finally:
            browser.close()


def test_history_tab_shows_who_trained_each_version(server: tuple[str, str, Path]) -> None:
    from mlwidget.widgets import HistoryPanel

    url, _, store = server
    model = MLModel("audit", store=store)
    shared = model.share(role="trainer", label="nightly retrain")
    reply = requests.post(
        f"{url}/mlhandler/audit",
        params={"_action": "retrain"},
        headers={"Authorization": f"Bearer {shared['key']}"},
        timeout=300,
    )
    assert reply.status_code == 200, reply.text

    history = HistoryPanel(MLModel("audit", store=store))
    html = history.table.value
    assert "<th" in html and "trained by" in html
    rows = {v["version"]: v for v in history.versions}
    newest, first = max(rows), min(rows)
    assert rows[newest]["trained_by"] == f"key 'nightly retrain' ({shared['id']})"
    # each row of the table says who: the key (label and id) for the retrain, owner before
    row_html = {
        number: html.split(f'data-version="{number}"', 1)[1].split("</tr>", 1)[0]
        for number in (newest, first)
    }
    assert f"key &#x27;nightly retrain&#x27; ({shared['id']})" in row_html[newest]
    assert "mlwidget-trained-by" in row_html[first] and ">owner<" in row_html[first]
