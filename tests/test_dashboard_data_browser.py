"""The Voila dashboard with real data files, driven by Chromium: a 40 MB CSV reaches the kernel
through the New model flow in slices with a progress bar and trains (a file past the limit is
refused with a message, nothing sent); inflation.csv is not made to predict its dates and its
dates become numbers; the History picker keeps the version chosen after a rollback, and Export
exports that version."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml
from conftest import GUIDE_OPTIONS, NOTEBOOKS
from rest_helpers import needs_chromium
from sync_browser import jp_asyncio_loop, jp_server_cleanup  # noqa: F401
from voila_helpers import Server, recording_page, voila_server

from mlwidget import MLModel

DATA = Path(__file__).parent / "data"
MB = 1024 * 1024
LIMIT = 45 * MB  # the dashboard's upload limit in this suite ($MLWIDGET_WIDGET_MAX_UPLOAD)

pytestmark = needs_chromium


def big_csv(path: Path, at_least: int) -> Path:
    """A regression table of numbers written as a CSV of at least ``at_least`` bytes."""
    rng = np.random.default_rng(0)
    rows = at_least // 96 + 1000  # ~97 bytes a row
    frame = pd.DataFrame(rng.normal(size=(rows, 10)).round(6), columns=[f"x{i}" for i in range(10)])
    frame["amount"] = (3 * frame.sum(axis=1) + rng.normal(size=rows)).round(4)
    frame.to_csv(path, index=False)
    assert path.stat().st_size >= at_least, path.stat().st_size
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("dashboard-data")
    store = tmp / "store"
    # the dashboard's Titanic model with three versions (the History tab's)
    model = MLModel("titanic", data=str(NOTEBOOKS / "titanic.csv"), store=store, **GUIDE_OPTIONS)
    model.configure(C=0.5)
    model.retrain()
    model.configure(class_="RandomForestClassifier", n_estimators=20, max_depth=4)
    model.retrain()
    with voila_server(tmp, MLWIDGET_WIDGET_MAX_UPLOAD=str(LIMIT)) as srv:
        yield srv


@pytest.fixture
def page(browser, server: Server):
    page = recording_page(browser, server)
    yield page
    page.context.close()


def open_dashboard(page, server: Server) -> None:
    from playwright.sync_api import expect

    page.goto(server.dashboard())
    page.locator(".mlwidget-app").wait_for()
    expect(page.locator(".mlwidget-title")).to_have_text("Model: titanic")


def choose_file(page, form, css: str, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        form.locator(css).click()
    chooser.value.set_files(str(path))


def test_a_40_mb_csv_trains_through_new_model_with_progress(
    server: Server, page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    csv = big_csv(tmp_path / "big.csv", 40 * MB)
    too_big = tmp_path / "bigger.csv"
    too_big.write_bytes(csv.read_bytes() + b"0" * (6 * MB))  # refused before it is read
    open_dashboard(page, server)
    page.locator(".mlwidget-new-button").click()
    form = page.locator(".mlwidget-new")
    note = form.locator(".mlwidget-upload-note")

    # past the limit: nothing is sent, the chooser and the form say why
    choose_file(page, form, ".mlwidget-new-file", too_big)
    expect(note).to_have_attribute("data-state", "error")
    expect(note).to_contain_text("more than the 45.0 MB this form accepts")
    expect(form.locator(".mlwidget-new-status")).to_contain_text("bigger.csv is ")
    expect(form.locator(".mlwidget-new-file button")).to_have_text("⬆ Data file (0)")

    # every text the progress line shows, as the page shows it
    page.evaluate(
        """() => { window.shown = [];
        new MutationObserver(() => {
          const n = document.querySelector('.mlwidget-new .mlwidget-upload-note');
          if (n && window.shown[window.shown.length - 1] !== n.textContent) window.shown.push(n.textContent);
        }).observe(document.body, { subtree: true, childList: true, characterData: true }); }"""
    )
    choose_file(page, form, ".mlwidget-new-file", csv)
    size = f"{csv.stat().st_size / MB:.1f} MB"
    expect(note).to_have_text(f"Sent big.csv ({size})")
    expect(form.locator(".mlwidget-new-file button")).to_have_text("⬆ Data file (1)")
    rows = len(pd.read_csv(csv, usecols=["amount"]))
    expect(form.locator(".mlwidget-new-info")).to_have_text(f"big.csv: {rows} rows × 11 columns")
    shown = page.evaluate("window.shown")
    done = [
        int(m.group(1)) for m in (re.search(r"of [\d.]+ MB \((\d+)%\)$", t) for t in shown) if m
    ]
    # the bar moved through the file as the kernel acknowledged its slices
    assert len(done) >= 10 and done == sorted(done) and 0 < done[0] and done[-2] < 100, shown

    expect(form.locator(".mlwidget-new-target select")).to_have_value("amount")
    form.locator(".mlwidget-new-class select").select_option("LinearRegression")
    form.locator(".mlwidget-new-create").click()
    expect(form.locator(".mlwidget-new-status")).to_contain_text(
        f"Created big: LinearRegression predicting amount (regressor), trained on {rows} rows"
    )
    expect(page.locator(".mlwidget-title")).to_have_text("Model: big")
    answer = requests.get(
        f"{server.url}/mlhandler/big", params={f"x{i}": 1 for i in range(10)}, headers=server.auth
    )
    assert answer.status_code == 200 and abs(answer.json()[0] - 30) < 1, answer.text


def test_inflation_suggests_no_date_target_and_reads_dates_as_numbers(server: Server, page) -> None:
    from playwright.sync_api import expect

    open_dashboard(page, server)
    page.locator(".mlwidget-new-button").click()
    form = page.locator(".mlwidget-new")
    choose_file(page, form, ".mlwidget-new-file", DATA / "inflation.csv")
    expect(form.locator(".mlwidget-new-preview table")).to_be_visible()
    target = form.locator(".mlwidget-new-target select")
    expect(target).not_to_have_value("index")
    expect(target).to_have_value(re.compile("^(Dp|R)$"))
    expect(form.locator(".mlwidget-new-kind button.mod-active")).to_have_text("regressor")
    expect(form.locator(".mlwidget-new-dates")).to_contain_text(
        "index: dates. The model reads each as numbers"
    )
    form.locator(".mlwidget-new-create").click()
    expect(form.locator(".mlwidget-new-status")).to_contain_text("Created inflation")
    expect(page.locator(".mlwidget-title")).to_have_text("Model: inflation")
    # the Predict tab asks for a date with a date picker, and predicts a number from it
    expect(page.locator('.mlwidget-input-index input[type="date"]')).to_be_visible()
    page.locator(".mlwidget-predict-button").click()
    expect(page.locator(".mlwidget-predict .mlwidget-prediction")).to_have_text(
        re.compile(r"^-?\d")
    )
    info = requests.get(f"{server.url}/mlhandler/inflation?_model", headers=server.auth).json()
    assert info["dates"] == ["index"] and info["target_col"] in ("Dp", "R")
    assert {f["name"]: f["kind"] for f in info["schema"]}["index"] == "date"


def test_history_picker_after_rollback_exports_the_chosen_version(server: Server, page) -> None:
    from playwright.sync_api import expect

    open_dashboard(page, server)
    page.get_by_role("tab", name="History").click()
    history = page.locator(".mlwidget-history-panel")
    expect(history.locator(".mlwidget-version-row")).to_have_count(3)
    expect(history.locator('.mlwidget-version-row[data-serving="true"]')).to_have_attribute(
        "data-version", "3"
    )
    picker = history.locator(".mlwidget-history-choice select")
    picker.select_option(label="1 · LogisticRegression")
    history.locator(".mlwidget-history-rollback").click()
    history.locator(".mlwidget-history-yes").click()
    expect(history.locator(".mlwidget-history-status")).to_contain_text(
        "Version 1 (LogisticRegression) serves again"
    )
    expect(history.locator('.mlwidget-version-row[data-serving="true"]')).to_have_attribute(
        "data-version", "1"
    )
    # the picker still shows the version chosen, and says it serves
    expect(picker.locator("option:checked")).to_have_text("1 · LogisticRegression · serving")
    expect(history.locator(".mlwidget-history-rollback")).to_be_disabled()
    history.locator(".mlwidget-history-export").click()
    link = history.locator("a.mlwidget-download")
    expect(link).to_have_attribute("download", "titanic-v1-mlflow.zip")
    zipped = base64.b64decode(link.get_attribute("href").split(",", 1)[1])
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        mlmodel = yaml.safe_load(archive.read("titanic-mlflow/MLmodel"))
    assert mlmodel["metadata"]["version"] == 1
    assert mlmodel["metadata"]["class"] == "LogisticRegression"
    serving = requests.get(f"{server.url}/mlhandler/titanic?_model", headers=server.auth).json()
    assert serving["version"] == 1
