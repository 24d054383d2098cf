"""The model page's parameter editor in a real browser (issue 30): scikit-learn's "deprecated"
placeholders are not offered, booleans are checkboxes whose change is saved."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests
from conftest import GUIDE_OPTIONS
from rest_helpers import CHROMIUM, TITANIC, chromium_page, jupyter_server

from mlwidget import MLModel

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("params")
    MLModel("titanic", data=str(TITANIC), store=tmp / "store", **GUIDE_OPTIONS)
    with jupyter_server(tmp, tmp / "store") as (url, token):
        yield url, token


def test_deprecated_parameters_hidden_and_booleans_are_checkboxes(
    server: tuple[str, str],
) -> None:
    from playwright.sync_api import expect

    url, token = server
    api = f"{url}/mlhandler/titanic"
    auth = {"Authorization": f"token {token}"}
    before = requests.get(api, params={"_model": ""}, headers=auth, timeout=60).json()
    # the guide's LogisticRegression has scikit-learn's placeholder (where the API lists it)
    assert before["params"]["penalty"] == "deprecated"
    with chromium_page(f"{api}?token={token}") as (page, errors):
        expect(page.locator('#params input[name="C"]')).to_have_value("1")
        assert page.locator('#params input[name="penalty"]').count() == 0
        names = page.locator("#params input").evaluate_all("els => els.map(e => e.name)")
        assert "penalty" not in names and "tol" in names
        box = page.locator('#params input[name="fit_intercept"]')
        assert box.get_attribute("type") == "checkbox"
        expect(box).to_be_checked()
        expect(page.locator('#params input[name="warm_start"]')).not_to_be_checked()
        box.uncheck()
        page.click("#model-form button[type=submit]")
        expect(page.locator("#model-result")).to_contain_text("Saved")
        expect(page.locator('#params input[name="fit_intercept"]')).not_to_be_checked()
        assert not errors, errors
    after = requests.get(api, params={"_model": ""}, headers=auth, timeout=60).json()
    assert after["params"]["fit_intercept"] is False
    # only the changed parameter was sent: the others keep their values
    assert after["params"]["warm_start"] is False and after["params"]["C"] == 1.0
