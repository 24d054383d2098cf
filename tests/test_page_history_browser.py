"""The model page's History section in Chromium against a real server: the versions with their
scores (a table and an inline SVG plot), Roll back after a confirmation, and each version's
MLflow export, which exports that version."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

import pytest
import requests
import yaml
from conftest import NOTEBOOKS
from rest_helpers import jupyter_server, launch_chromium, needs_chromium
from sync_browser import jp_asyncio_loop, jp_server_cleanup  # noqa: F401
from voila_helpers import TIMEOUT_MS

from mlwidget import MLModel

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("page-history")
    store = tmp / "store"
    model = MLModel("iris", data=str(NOTEBOOKS / "iris.csv"), store=store,
                    target_col="species", model={"class": "LogisticRegression"})  # fmt: skip
    for cls in ("DecisionTreeClassifier", "KNeighborsClassifier"):
        model.configure(class_=cls)
        model.retrain()
    with jupyter_server(tmp, store) as (url, token):
        yield url, token


def test_the_model_page_lists_versions_rolls_back_and_exports_one(server) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, token = server
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/mlhandler/iris?token={token}")
            section = page.locator("#history-section")
            rows = section.locator("tr.history-row")
            expect(rows).to_have_count(3)
            expect(section.locator('tr[data-serving="true"]')).to_have_attribute(
                "data-version", "3"
            )
            expect(section.locator("#history-scores polyline").first).to_be_visible()
            expect(section.locator('tr[data-serving="true"] .history-rollback')).to_have_count(0)

            asked: list[str] = []
            page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
            section.locator('.history-rollback[data-version="1"]').click()
            expect(section.locator('tr[data-serving="true"]')).to_have_attribute(
                "data-version", "3"
            )  # dismissed: nothing changed
            assert asked == [
                "Serve version 1 (LogisticRegression) again instead of version 3 "
                "(KNeighborsClassifier)?"
            ]
            page.once("dialog", lambda d: d.accept())
            section.locator('.history-rollback[data-version="1"]').click()
            expect(page.locator("#history-result")).to_have_text(
                "Version 1 (LogisticRegression) serves again (it was version 3)."
            )
            expect(section.locator('tr[data-serving="true"]')).to_have_attribute(
                "data-version", "1"
            )
            expect(page.locator("#summary")).to_contain_text(
                "fitted LogisticRegression (version 1)"
            )

            with page.expect_download() as download:
                section.locator('tr[data-version="1"] a.history-export').click()
            saved = download.value
            assert saved.suggested_filename == "iris-v1-mlflow.zip"
            zipped = open(saved.path(), "rb").read()
        finally:
            browser.close()
    assert not errors, errors
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        mlmodel = yaml.safe_load(archive.read("iris-mlflow/MLmodel"))
    assert mlmodel["metadata"]["version"] == 1
    assert mlmodel["metadata"]["class"] == "LogisticRegression"
    info = requests.get(f"{url}/mlhandler/iris?_model", headers={"Authorization": f"token {token}"})
    assert info.json()["version"] == 1
