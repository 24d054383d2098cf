"""The model page's Explain button in Chromium against a real server: for a forest and a linear
model (and a logistic regression's log-odds) it draws a waterfall whose base value and
contributions, read from the page, add up to the output it explains, which for a regressor is
the prediction the page shows."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from conftest import GUIDE_OPTIONS, NOTEBOOKS
from rest_helpers import jupyter_server, needs_chromium
from sync_browser import jp_asyncio_loop, jp_server_cleanup  # noqa: F401
from voila_helpers import TIMEOUT_MS

from mlwidget import MLModel

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("explain")
    store = tmp / "store"
    weight = str(NOTEBOOKS / "weight.csv")
    MLModel("forest", data=weight, store=store, target_col="weight",
            model={"class": "RandomForestRegressor", "n_estimators": 30, "max_depth": 6})  # fmt: skip
    MLModel("linear", data=weight, store=store, target_col="weight",
            model={"class": "LinearRegression"})  # fmt: skip
    MLModel("titanic", data=str(NOTEBOOKS / "titanic.csv"), store=store, **GUIDE_OPTIONS)
    with jupyter_server(tmp, store) as (url, token):
        yield url, token


def explained(browser, url: str, token: str, name: str) -> dict:
    """Predict the model page's prefilled row, then Explain it; what the page shows."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{url}/mlhandler/{name}?token={token}")
        page.click("#single-submit")
        expect(page.locator("#single-result .prediction")).not_to_be_empty()
        page.click("#explain-submit")
        rows = page.locator("#explain-result svg.waterfall g.wf-row")
        expect(rows.first).to_be_visible()
        steps = rows.evaluate_all(
            "gs => gs.map(g => ({kind: g.dataset.kind, name: g.dataset.name || null,"
            " value: Number(g.dataset.value), label: g.querySelector('text').textContent}))"
        )
        return {
            "prediction": page.locator("#single-result .prediction").text_content(),
            "explained": page.locator("#explain-result .explain-prediction").text_content(),
            "caption": page.locator("#explain-caption").text_content(),
            "head": page.locator("#explain-head").text_content(),
            "steps": steps,
            "errors": errors,
        }
    finally:
        page.close()


def adds_up(steps: list[dict]) -> tuple[float, float]:
    base = [s["value"] for s in steps if s["kind"] == "base"]
    value = [s["value"] for s in steps if s["kind"] == "value"]
    assert len(base) == 1 and len(value) == 1, steps
    assert steps[0]["kind"] == "base" and steps[-1]["kind"] == "value"
    total = base[0] + math.fsum(s["value"] for s in steps if s["kind"] == "feature")
    return total, value[0]


@pytest.mark.parametrize("name, method", [("forest", "tree"), ("linear", "linear")])
def test_the_waterfall_adds_up_to_the_prediction(server, browser, name: str, method: str) -> None:
    url, token = server
    shown = explained(browser, url, token, name)
    assert not shown["errors"], shown["errors"]
    features = [s["name"] for s in shown["steps"] if s["kind"] == "feature"]
    assert sorted(features) == ["age", "height", "male"]
    total, value = adds_up(shown["steps"])
    assert math.isclose(total, value, rel_tol=1e-6, abs_tol=1e-6), (total, value)
    # the output explained is the prediction the page shows (4 significant digits there)
    predicted = float(shown["prediction"])
    assert math.isclose(predicted, value, rel_tol=1e-3), (predicted, value)
    assert shown["explained"] == shown["prediction"]
    assert f"Method: {method} (exact" in shown["caption"]
    # largest effect first, each labelled with the row's value
    effects = [abs(s["value"]) for s in shown["steps"] if s["kind"] == "feature"]
    assert effects == sorted(effects, reverse=True)
    assert any(s["label"].startswith("height = ") for s in shown["steps"])


def test_a_classifier_explains_the_log_odds_of_its_predicted_class(server, browser) -> None:
    url, token = server
    shown = explained(browser, url, token, "titanic")
    assert not shown["errors"], shown["errors"]
    total, value = adds_up(shown["steps"])
    assert math.isclose(total, value, rel_tol=1e-6, abs_tol=1e-6), (total, value)
    assert shown["head"].endswith(f"Explained: the log-odds of class {shown['prediction']}.")
    assert shown["explained"] == shown["prediction"]
    assert {s["name"] for s in shown["steps"] if s["kind"] == "feature"} == {
        "Sex", "Age", "SibSp", "Parch", "Fare", "Pclass", "Embarked"
    }  # fmt: skip
