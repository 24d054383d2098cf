"""The default page in a real browser (Playwright + Debian's chromium) against a real server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import GUIDE_OPTIONS
from rest_helpers import (
    CHROMIUM,
    TITANIC,
    chromium_page,
    jupyter_server,
    launch_chromium,
    predict_the_guide_passenger,
)

from mlwidget import MLModel

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A ``python -m jupyter_server`` subprocess serving a store with the guide's model."""
    tmp = tmp_path_factory.mktemp("browser")
    MLModel("titanic", data=str(TITANIC), store=tmp / "store", **GUIDE_OPTIONS)
    # the retrain test's 1,500-stage boosting is slow on purpose (its progress shows); its
    # cross-validation runs (the test process's $MLWIDGET_CV_FOLDS=0 is overridden), and must
    # not be skipped for time on a busy machine (cv_seconds)
    settings = ("--MLWidgetApp.cv_folds=5", "--MLWidgetApp.cv_seconds=3600")
    with jupyter_server(tmp, tmp / "store", *settings) as (url, token):
        yield url, token


def test_default_page_predicts_one_row_and_a_file(server: tuple[str, str]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, token = server
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/mlhandler/titanic?token={token}")
            expect(page.locator("h1")).to_have_text("titanic")

            # single predict: the guide's passenger did not survive
            predict_the_guide_passenger(page)

            # bulk predict: upload the CSV, see the result table and the download link
            page.set_input_files("#bulk-file", str(TITANIC))
            page.click("#bulk-form button[type=submit]")
            expect(page.locator("#bulk-result table tbody tr")).to_have_count(200)
            expect(page.locator("#bulk-result")).to_contain_text("Showing 200 of 891 rows")
            # the file's columns, then the prediction (marked) and whether it is right
            expect(page.locator("#bulk-result th.target")).to_have_text("Survived")
            expect(page.locator("#bulk-result th.predicted")).to_have_text("predicted Survived")
            header = page.locator("#bulk-result th").all_text_contents()
            assert header[0] == "PassengerId" and header[-2:] == ["predicted Survived", "correct"]
            expect(page.locator("#bulk-score")).to_contain_text("accuracy")
            # numbers rounded for display, the full value in the title
            fare = (
                page.locator("#bulk-result tbody tr").first.locator("td").nth(header.index("Fare"))
            )
            assert fare.text_content() == "7.25" and fare.get_attribute("title") == "7.25"
            expect(page.locator("#bulk-download")).to_be_visible()
            with page.expect_download() as download:
                page.click("#bulk-download")
            assert download.value.suggested_filename == "titanic-predictions.csv"
            # the API's CSV of the same file (?_format=csv): its rows, the prediction in the
            # target column, every row (not the 200 shown)
            lines = Path(download.value.path()).read_text().splitlines()
            assert lines[0] == TITANIC.read_text().splitlines()[0]
            assert len(lines) == 892
            with page.expect_download() as download:
                page.click("#download-mlflow")
            assert download.value.suggested_filename == "titanic-mlflow.zip"
            import zipfile

            names = zipfile.ZipFile(download.value.path()).namelist()
            assert "titanic-mlflow/MLmodel" in names and "titanic-mlflow/model.pkl" in names
            assert not errors, errors
        finally:
            browser.close()


def test_page_retrain_shows_job_progress_and_cancels(server: tuple[str, str]) -> None:
    """The page's Retrain follows its job: stage, real progress and elapsed time, a Cancel
    button that stops an endless fit (and nothing is stored)."""
    import requests
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)  # a fit and its cross-validation take seconds
    url, token = server
    auth = {"Authorization": f"token {token}"}
    api = f"{url}/mlhandler/titanic"

    def put(**params: str) -> None:
        reply = requests.put(api, params={"_model": "", **params}, headers=auth, timeout=60)
        assert reply.status_code == 200, reply.text

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            put(**{"class": "GradientBoostingClassifier", "n_estimators": "1500"})
            page.goto(f"{api}?token={token}")
            # the page says what a retrain learns from: a file replaces the stored data
            expect(page.locator("#retrain-data-note")).to_contain_text(
                "Without a file, the model retrains on the stored training data (891 rows)"
            )
            page.set_input_files("#retrain-file", str(TITANIC))
            expect(page.locator("#retrain-data-note")).to_contain_text(
                "The file titanic.csv replaces the stored training data (891 rows)"
            )
            page.set_input_files("#retrain-file", [])
            page.click("#retrain-submit")
            expect(page.locator("#retrain-cancel")).to_be_visible()
            expect(page.locator("#retrain-result")).to_contain_text("Training: fit")
            expect(page.locator("#retrain-result")).to_contain_text("%")
            seen = page.locator("#retrain-progress").evaluate("el => el.value")
            expect(page.locator("#retrain-result .ok")).to_contain_text(
                "Trained GradientBoostingClassifier"
            )
            expect(page.locator("#retrain-result .ok")).to_contain_text("5-fold cv (version")
            expect(page.locator(".rows-explained")).to_contain_text("Fit on 674 of 891 stored rows")
            assert 0 <= seen <= 1
            expect(page.locator("#retrain-cancel")).to_be_hidden()

            put(**{"class": "SGDClassifier", "max_iter": "2000000000", "tol": "null"})
            trained = requests.get(api, params={"_model": ""}, headers=auth).json()["fitted"]
            page.goto(f"{api}?token={token}")
            page.click("#retrain-submit")
            expect(page.locator("#retrain-result")).to_contain_text("Training: fit")
            page.click("#retrain-cancel")
            expect(page.locator("#retrain-result .error")).to_contain_text("was cancelled")
            expect(page.locator("#retrain-submit")).to_be_enabled()
            jobs = requests.get(api, params={"_jobs": ""}, headers=auth).json()
            assert jobs[0]["status"] == "cancelled"
            assert (
                requests.get(api, params={"_model": ""}, headers=auth).json()["fitted"] == trained
            )
            assert not errors, errors
        finally:
            browser.close()
            put(**{"class": "LogisticRegression"})


def test_bulk_results_download_opens_formulas_as_text(server: tuple[str, str], tmp_path) -> None:
    """A file's text cells that a spreadsheet would run (=, +, -, @) come back quoted in the
    page's CSV download, which the server writes (the page has no CSV writer of its own);
    numbers (a negative fare) stay numbers."""
    import csv

    import pandas as pd
    from playwright.sync_api import expect, sync_playwright

    url, token = server
    rows = pd.read_csv(TITANIC).head(5)
    rows["Name"] = ['=HYPERLINK("http://evil.example","x")', "@SUM(1)", "plain", "-x", "+1"]
    rows.loc[0, "Fare"] = -3.5
    upload = tmp_path / "formulas.csv"
    rows.to_csv(upload, index=False)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(f"{url}/mlhandler/titanic?token={token}")
            page.set_input_files("#bulk-file", str(upload))
            page.click("#bulk-form button[type=submit]")
            expect(page.locator("#bulk-result table tbody tr")).to_have_count(5)
            with page.expect_download() as download:
                page.click("#bulk-download")
            table = list(csv.DictReader(open(download.value.path(), newline="")))
            script = page.evaluate("Array.from(document.scripts).map((s) => s.text).join()")
        finally:
            browser.close()
    assert "csvCell" not in script and "csvText" not in script  # no second formula rule
    names = [r["Name"] for r in table]
    assert names == ['\'=HYPERLINK("http://evil.example","x")', "'@SUM(1)", "plain", "'-x", "+1"]
    assert table[0]["Fare"] == "-3.5"


def test_a_category_that_opens_an_html_comment_keeps_the_page_working(
    server: tuple[str, str],
) -> None:
    """A training value <!--<script> left the parameter editor empty and the page's forms
    dead: the inline JSON kept <!-- and <script, and </script> no longer ended the script."""
    import requests
    from playwright.sync_api import expect

    url, token = server
    auth = {"Authorization": f"token {token}"}
    api = f"{url}/mlhandler/tagged"
    reply = requests.put(
        api,
        params={"_model": "", "class": "LogisticRegression", "target_col": "y"},
        headers=auth,
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    body = "x,c,y\n1,<!--<script>,0\n2,a,1\n3,<!--<script>,0\n4,b,1\n5,</script>,0\n6,a,1\n"
    reply = requests.post(
        api,
        params={"_action": "retrain"},
        data=body.encode(),
        headers={**auth, "Content-Type": "text/csv"},
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    with chromium_page(f"{api}?token={token}") as (page, errors):
        expect(page.locator("h1")).to_have_text("tagged")
        expect(page.locator('#params input[name="C"]')).to_have_value("1")
        expect(page.locator("#opt-target_col")).to_have_value("y")
        options = page.locator('#single-form select[name="c"] option').all_text_contents()
        assert "<!--<script>" in options and "</script>" in options
        # the forms work: one row predicted
        page.locator('#single-form select[name="c"]').select_option("<!--<script>")
        page.locator('#single-form [name="x"]').fill("1")
        page.click("#single-submit")
        expect(page.locator("#single-result .prediction")).to_have_text("0")
        assert not errors, errors
