"""notebooks/dashboard.ipynb in Voila, served by a real `jupyter server`, driven by Chromium.

The server runs as a subprocess (Playwright's sync API cannot run inside pytest-jupyter's event
loop) with the voila and mlwidget_server extensions, a private store and runtime directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import GUIDE_PASSENGER, NOTEBOOKS
from rest_helpers import needs_chromium
from sync_browser import jp_asyncio_loop, jp_server_cleanup  # noqa: F401
from voila_helpers import Server, voila_server

TIMEOUT_MS = 90_000
SHOTS = os.environ.get("MLWIDGET_SCREENSHOTS")  # a folder: save screenshots there for a look


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS, f"{name}.png")), full_page=True)


pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with voila_server(tmp_path_factory.mktemp("voila")) as served:
        yield served


@pytest.fixture
def page(browser):
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    # The Voila template links CDNs; fail those fast and explicitly (the tests run offline).
    page.route(
        "**/*",
        lambda route: route.continue_() if "127.0.0.1" in route.request.url else route.abort(),
    )
    yield page
    page.close()


def fill_passenger(page) -> None:
    for name, value in GUIDE_PASSENGER.items():
        field = page.locator(f".mlwidget-input-{name}")
        if field.locator("select").count():
            field.locator("select").select_option(label=str(value))
        else:
            box = field.locator("input")
            box.fill(str(value))
            box.press("Tab")  # number boxes sync on change (blur), not on each keystroke


def test_dashboard_predicts_the_guide_passenger(server: Server, page) -> None:
    from playwright.sync_api import expect

    page.goto(server.dashboard())
    page.locator(".mlwidget-app").wait_for()
    expect(page.locator(".mlwidget-title")).to_have_text("Model: titanic")
    fill_passenger(page)
    page.locator(".mlwidget-predict-button").click()
    expect(page.locator(".mlwidget-predict .mlwidget-prediction")).to_have_text("0")
    expect(page.locator(".mlwidget-predict .mlwidget-answer-line")).to_contain_text("Survived")
    expect(page.locator(".mlwidget-proba-value").first).to_be_visible()
    shot(page, "predict")
    # the dashboard created the model in the store the REST API reads
    assert (server.store / "titanic").is_dir()


def test_rest_change_shows_in_the_dashboard(server: Server, page) -> None:
    from playwright.sync_api import expect

    page.goto(server.dashboard())  # creates the model if the first test did not run
    page.locator(".mlwidget-app").wait_for()
    page.get_by_role("tab", name="Summary").click()  # tabs are built when first opened
    expect(page.locator(".mlwidget-summary .mlwidget-class")).to_have_text("LogisticRegression")

    api = f"{server.url}/mlhandler/titanic"
    probe = requests.get(f"{api}?_model", headers=server.auth, timeout=30)
    if probe.status_code == 404 and "error" not in probe.text:
        pytest.skip("the mlwidget_server REST extension is not serving /mlhandler/ yet")
    put = requests.put(
        f"{api}?_model&class=RandomForestClassifier&n_estimators=10",
        headers=server.auth,
        timeout=30,
    )
    assert put.status_code == 200, put.text
    assert put.json()["model"] == "RandomForestClassifier"
    train = requests.post(f"{api}?_action=retrain", headers=server.auth, timeout=120)
    assert train.status_code == 200, train.text

    page.reload()
    page.locator(".mlwidget-app").wait_for()
    page.get_by_role("tab", name="Summary").click()
    summary = page.locator(".mlwidget-summary")
    expect(summary.locator(".mlwidget-class")).to_have_text("RandomForestClassifier")
    expect(summary.locator(".mlwidget-fitted-class")).to_have_text("RandomForestClassifier")
    expect(summary.locator(".mlwidget-stale")).to_have_attribute("data-stale", "false")
    expect(summary.locator(".mlwidget-plot-importance")).to_be_visible()
    shot(page, "summary")
    page.get_by_role("tab", name="Editor").click()
    expect(page.locator(".mlwidget-editor-class select")).to_have_value("RandomForestClassifier")
    shot(page, "editor")
    # a retrain from the widget runs in a kernel thread; its result still reaches the page
    page.locator(".mlwidget-editor-retrain").click()
    expect(page.locator(".mlwidget-editor-status")).to_contain_text(
        "Trained RandomForestClassifier"
    )
    expect(page.locator(".mlwidget-editor-retrain")).to_be_enabled()
    page.get_by_role("tab", name="Upload").click()
    shot(page, "upload")
    # and the predict form still answers, now from the forest
    page.get_by_role("tab", name="Predict").click()
    page.locator(".mlwidget-predict-button").click()
    expect(page.locator(".mlwidget-predict .mlwidget-prediction")).to_have_text(
        re.compile(r"^[01]$")
    )


def create_model(page, csv: Path, target: str, kind: str, estimator: str) -> None:
    """The dashboard's New model flow, as a person does it: file, check, Create."""
    from playwright.sync_api import expect

    form = page.locator(".mlwidget-new")
    if not form.is_visible():
        page.locator(".mlwidget-new-button").click()
    # ipywidgets' FileUpload keeps its <input type=file> out of the page: use the chooser
    with page.expect_file_chooser() as chooser:
        form.locator(".mlwidget-new-file").click()
    chooser.value.set_files(str(csv))
    expect(form.locator(".mlwidget-new-preview table")).to_be_visible()
    expect(form.locator(".mlwidget-new-target select")).to_have_value(target)
    expect(form.locator(".mlwidget-new-kind button.mod-active")).to_have_text(kind)
    expect(form.locator(".mlwidget-new-why")).to_contain_text(
        "so this is " + {"classifier": "classification", "regressor": "regression"}[kind]
    )
    expect(form.locator(".mlwidget-new-class select")).to_have_value(estimator)
    expect(form.locator(".mlwidget-new-name input")).to_have_value(csv.stem)
    shot(page, f"new-{csv.stem}")
    form.locator(".mlwidget-new-create").click()
    # training runs as a job: its stage and elapsed time show meanwhile
    expect(form.locator(".mlwidget-new-status")).to_contain_text(
        f"Created {csv.stem}", timeout=TIMEOUT_MS
    )
    expect(page.locator(".mlwidget-title")).to_have_text(f"Model: {csv.stem}")
    expect(page.locator(".mlwidget-dashboard-status")).to_contain_text(
        f"Created {csv.stem}: {estimator} predicting {target}"
    )
    expect(page.locator(".mlwidget-picker select")).to_have_value(csv.stem)


def fill(page, row: dict) -> None:
    for name, value in row.items():
        box = page.locator(f".mlwidget-input-{name} input")
        box.fill(str(value))
        box.press("Tab")


def test_new_models_from_files_without_code(server: Server, page) -> None:
    from playwright.sync_api import expect

    page.goto(server.dashboard())
    page.locator(".mlwidget-app").wait_for()
    create_model(page, NOTEBOOKS / "iris.csv", "species", "classifier", "RandomForestClassifier")
    fill(page, {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.5, "petal_width": 2})
    page.locator(".mlwidget-predict-button").click()
    expect(page.locator(".mlwidget-predict .mlwidget-prediction")).to_have_text("virginica")
    shot(page, "new-iris-predict")

    create_model(page, NOTEBOOKS / "weight.csv", "weight", "regressor", "RandomForestRegressor")
    page.locator(".mlwidget-predict-button").click()
    prediction = page.locator(".mlwidget-predict .mlwidget-prediction")
    expect(prediction).to_have_text(re.compile(r"^\d+(\.\d{1,2})?$"))  # rounded for display
    # the picker swaps back to a model, and the store holds both for the REST API too
    page.locator(".mlwidget-picker select").select_option("iris")
    expect(page.locator(".mlwidget-title")).to_have_text("Model: iris")
    assert {"iris", "weight", "titanic"} <= {p.name for p in server.store.iterdir()}
    answer = requests.get(
        f"{server.url}/mlhandler/weight?male=1&age=30&height=170", headers=server.auth, timeout=30
    )
    assert answer.status_code == 200, answer.text
