"""The listing page (``GET {base_url}mlhandler/`` from a browser) and its "New model" flow:
models made from a file without code, in a real browser (Playwright + Debian's chromium)
against a real server; then each predicts from its model page."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import NOTEBOOKS
from rest_helpers import (
    call,
    jupyter_server,
    launch_chromium,
    needs_chromium,
    titanic_server_config,
)

from mlwidget.display import fmt_num
from mlwidget.names import suggested_name
from mlwidget.store import MAX_NAME, Store

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
IRIS = NOTEBOOKS / "iris.csv"
WEIGHT = NOTEBOOKS / "weight.csv"


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv)


async def test_listing_is_json_for_api_clients_and_a_page_for_browsers(jp_fetch):
    await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})  # waits for its training
    plain = await call(jp_fetch, "mlhandler/")
    assert plain.code == 200 and plain.headers["Content-Type"].startswith("application/json")
    assert [m["name"] for m in plain.json()["models"]] == ["titanic"]
    for accept in ("*/*", "application/json", "application/json, text/html;q=0.5"):
        reply = await call(jp_fetch, "mlhandler/", headers={"Accept": accept})
        assert reply.body == plain.body, accept  # byte-identical for API clients
    page = await call(jp_fetch, "mlhandler/", headers=BROWSER)
    assert page.code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "Accept" in page.headers["Vary"]
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    text = page.text
    # the model's row: its class, kind, target, its page and its API page
    assert 'data-name="titanic"' in text and "LogisticRegression" in text
    assert "classifier" in text and "Survived" in text
    assert "titanic?_openapi&amp;_format=html" in text
    assert 'id="new-model"' in text and 'id="new-file"' in text
    assert "<script src" not in text and "<link" not in text
    # its score as the server writes numbers (mlwidget.display.fmt_num), the full one in the title
    score = re.search(r'<td class="score" title="([^"]+)"', text)
    assert score, text
    assert f'<span class="num">{fmt_num(float(score.group(1)))}</span>' in text


async def test_preview_names_the_model_as_the_store_would(jp_fetch, store_dir: Path):
    """The New model flow's name comes from the server (mlwidget.names): the suggestion for
    the uploaded file's name, and why a typed name cannot be taken, in the core's words."""
    await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})  # waits for its training
    body = IRIS.read_bytes()
    csv_type = {"Content-Type": "text/csv"}

    async def preview(body: bytes = b"", **params: str) -> dict:
        reply = await call(
            jp_fetch,
            "mlhandler/",
            method="POST",
            params={"_action": "preview", **params},
            body=body,
            headers=csv_type if body else {},
        )
        assert reply.code == 200, reply.body
        return reply.json()

    odd = "Titanic (2).." + "é" * 10 + "x" * 200 + ".csv"
    found = await preview(body, filename=odd)
    assert found["target"] == "species"  # the preview as before
    assert found["suggested_name"] == found["name"] == suggested_name(odd)
    assert len(found["name"]) == 128 and found["name_error"] is None
    found = await preview(body, filename="Titanic.csv")  # only case differs from titanic
    assert found["suggested_name"] == "Titanic-2" and found["name_error"] is None
    found = await preview(body)  # no file name
    assert found["suggested_name"] == "model"
    # a typed name, without the file again: the core's refusal, word for word
    for name, words in (
        ("titanic", "A model named 'titanic' exists already, so nothing was created"),
        ("Titanic", "differs from it only by case"),
        ("my model!", "letters, digits"),
        ("v2", "Open Inference Protocol"),
        ("", "Expected a model name"),
    ):
        found = await preview(name=name)
        assert sorted(found) == ["name", "name_error"] and found["name"] == name
        assert words in found["name_error"], found
    assert await preview(name="iris") == {"name": "iris", "name_error": None}
    assert Store(store_dir).names() == ["titanic"]  # nothing stored


async def test_listing_page_needs_a_login(jp_fetch):
    no_token = {"Authorization": ""}
    page = await call(
        jp_fetch, "mlhandler/", headers={**BROWSER, **no_token}, follow_redirects=False
    )
    assert page.code == 302 and "/login" in page.headers["Location"]
    reply = await call(jp_fetch, "mlhandler/", headers=no_token)
    assert reply.code == 403 and "token" in reply.json()["error"]


# ------------------------------------------------------------------ in a browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """A ``python -m jupyter_server`` subprocess with an empty store."""
    tmp = tmp_path_factory.mktemp("listing")
    (tmp / "store").mkdir()
    with jupyter_server(tmp, tmp / "store") as (url, token):
        yield url, token, tmp / "store"


def _create(page, url: str, file: Path, target: str, kind: str, cls: str, reason: str) -> None:
    """The New model flow on the listing page, up to the new model's page."""
    from playwright.sync_api import expect

    page.goto(f"{url}/mlhandler/")
    page.set_input_files("#new-file", str(file))
    expect(page.locator("#new-preview-table tbody tr")).to_have_count(10)
    expect(page.locator("#new-preview-table th.target")).to_have_text(target)
    expect(page.locator("#new-target")).to_have_value(target)
    expect(page.locator("#new-kind")).to_have_text(kind)
    expect(page.locator("#new-reason")).to_contain_text(reason)
    expect(page.locator("#new-class")).to_have_value(cls)
    expect(page.locator("#new-name")).to_have_value(file.stem)
    page.click("#new-create")
    expect(page.locator("#new-cancel")).to_be_visible()  # a job, with Cancel
    expect(page.locator("#new-result")).to_contain_text("Training:")
    page.wait_for_url(f"{url}/mlhandler/{file.stem}")
    expect(page.locator("h1")).to_have_text(file.stem)
    expect(page.locator("#summary")).to_contain_text(f"fitted {cls}")


def _bulk(page, file: Path) -> list[str]:
    """Predict a file on the model page; the result table's header."""
    from playwright.sync_api import expect

    page.set_input_files("#bulk-file", str(file))
    page.click("#bulk-form button[type=submit]")
    expect(page.locator("#bulk-result table")).to_be_visible()
    return page.locator("#bulk-result th").all_text_contents()


@needs_chromium
def test_new_models_from_iris_and_weight_without_code(server, tmp_path: Path) -> None:
    import requests
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)
    url, token, store = server
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/mlhandler/?token={token}")  # logs in (the cookie)
            expect(page.locator("#no-models")).to_be_visible()

            # iris: species is text with 3 values -> a classifier, a random forest
            _create(page, url, IRIS, "species", "classifier", "RandomForestClassifier", "species")
            page.click("#single-submit")
            expect(page.locator("#single-result .prediction")).to_have_text(
                re.compile("^(setosa|versicolor|virginica)$")
            )
            header = _bulk(page, IRIS)
            with IRIS.open() as f:
                columns = next(csv.reader(f))
            # the input's columns as given, then the prediction, then whether it is right
            assert header[: len(columns)] == columns
            assert header[len(columns) :] == ["predicted species", "correct"]
            expect(page.locator("#bulk-result th.predicted")).to_have_text("predicted species")
            expect(page.locator("#bulk-score")).to_contain_text("accuracy")
            expect(page.locator("#bulk-result")).to_contain_text("predictions right")
            # with probabilities: one column per class
            page.check("#bulk-proba")
            header = _bulk(page, IRIS)
            expect(page.locator("#bulk-result th", has_text="P(setosa)")).to_have_count(1)
            header = page.locator("#bulk-result th").all_text_contents()
            assert [h for h in header if h.startswith("P(")] == [
                "P(setosa)",
                "P(versicolor)",
                "P(virginica)",
            ]
            # display rounds (the title keeps every digit)
            cell = (
                page.locator("#bulk-result tbody tr")
                .first.locator("td")
                .nth(header.index("P(setosa)"))
            )
            assert len(cell.text_content()) <= 6
            assert cell.text_content() == fmt_num(float(cell.get_attribute("title")))
            # the download is the server's CSV of the same file: its rows, the prediction in
            # the target column
            shown = page.locator("#bulk-result td.predicted").all_text_contents()
            with page.expect_download() as download:
                page.click("#bulk-download")
            assert download.value.suggested_filename == "iris-predictions.csv"
            rows = list(csv.reader(Path(download.value.path()).open()))
            assert rows[0] == columns
            assert len(rows) == 1 + sum(1 for _ in IRIS.open()) - 1
            assert [r[columns.index("species")] for r in rows[1:]] == shown

            # the model page and the listing link each other; the listing shows the new model
            page.click("#link-list")
            row = page.locator('#models tr[data-name="iris"]')
            expect(row).to_contain_text("RandomForestClassifier")

            # the name the server suggests (mlwidget.names), and its refusals in its words
            page.set_input_files("#new-file", str(IRIS))
            expect(page.locator("#new-name")).to_have_value("iris-2")
            page.fill("#new-name", "iris")
            expect(page.locator("#new-result .error")).to_contain_text(
                "A model named 'iris' exists already"
            )
            page.fill("#new-name", "my model!")
            expect(page.locator("#new-result .error")).to_contain_text("letters, digits")
            page.click("#new-create")
            expect(page.locator("#new-result .error")).to_contain_text("Try 'my-model'")
            assert not (store / "my model!").exists()
            odd = tmp_path / ("Iris (copy)..." + "x" * 150 + ".csv")
            odd.write_bytes(IRIS.read_bytes())
            page.set_input_files("#new-file", str(odd))
            expect(page.locator("#new-name")).to_have_value(suggested_name(odd.name, Store(store)))
            assert len(page.locator("#new-name").input_value()) == MAX_NAME

            # a model made after the page loaded (by someone else): the page's list lacks it,
            # and "App" differs from "app" only by case. The flow's PUT ?_create is refused
            # in words and "app" stays exactly as it was.
            auth = {"Authorization": f"token {token}"}
            made = requests.put(
                f"{url}/mlhandler/app", params={"_model": "", "class": "SVC"}, headers=auth
            )
            assert made.status_code == 200, made.text
            before = sorted((p.name, p.read_bytes()) for p in (store / "app").iterdir())
            page.fill("#new-name", "App")
            page.click("#new-create")
            expect(page.locator("#new-result .error")).to_contain_text(
                "A model named 'app' exists already, and 'App' differs from it only by case"
            )
            expect(page.locator("#new-result")).not_to_contain_text("created but not trained")
            page.fill("#new-name", "app")
            page.click("#new-create")
            expect(page.locator("#new-result .error")).to_contain_text(
                "A model named 'app' exists already, so nothing was created or changed"
            )
            assert sorted((p.name, p.read_bytes()) for p in (store / "app").iterdir()) == before
            assert not (store / "App").exists()

            # weight: a number with many values -> a regressor
            _create(page, url, WEIGHT, "weight", "regressor", "RandomForestRegressor", "weight")
            header = _bulk(page, WEIGHT)
            assert header == ["male", "age", "height", "weight", "predicted weight", "error"]
            expect(page.locator("#bulk-score")).to_contain_text("r2")
            assert page.locator("#bulk-proba").count() == 0  # no probabilities for a regressor
            assert not errors, errors
        finally:
            browser.close()

    # both models exist for the API too, trained on their files
    auth = {"Authorization": f"token {token}"}
    for name, target, cls in (
        ("iris", "species", "RandomForestClassifier"),
        ("weight", "weight", "RandomForestRegressor"),
    ):
        info = requests.get(f"{url}/mlhandler/{name}", params={"_model": ""}, headers=auth).json()
        assert info["target_col"] == target and info["fitted"]["model"] == cls, info
    listed = requests.get(f"{url}/mlhandler/", headers=auth).json()
    assert sorted(m["name"] for m in listed["models"]) == ["app", "iris", "weight"]
    assert json.dumps(listed)  # still the JSON answer


@needs_chromium
def test_new_model_errors_are_words_and_store_nothing(server, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, token, store = server
    bad = tmp_path / "empty.csv"
    bad.write_text("")
    before = sorted(p.name for p in store.iterdir())
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(f"{url}/mlhandler/?token={token}")
            page.set_input_files("#new-file", str(bad))
            expect(page.locator("#new-preview .error")).to_contain_text("table")
            expect(page.locator("#new-options")).to_be_hidden()
        finally:
            browser.close()
    assert sorted(p.name for p in store.iterdir()) == before
