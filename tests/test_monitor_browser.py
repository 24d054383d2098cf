"""The model page after it is served (issue 29), in a real browser (Playwright + Debian's
chromium) against a real server: the Monitor section draws the traffic, the live metric and the
drift of a shifted feature from ``?_monitor``; the feedback controls under a prediction store
exactly what the user said (read back from the feedback files and ``?_log``), show the server's
error on a 400, and a viewer gives feedback on its own answer without seeing the Monitor."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from conftest import GUIDE_OPTIONS
from rest_helpers import (
    TITANIC,
    jupyter_server,
    launch_chromium,
    needs_chromium,
    predict_the_guide_passenger,
)

from mlwidget import MLModel, feedback

pytestmark = needs_chromium

FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """A ``python -m jupyter_server`` subprocess serving the guide's model, which logs its
    predictions."""
    tmp = tmp_path_factory.mktemp("monitor")
    store = tmp / "store"
    MLModel("titanic", data=str(TITANIC), store=store, **GUIDE_OPTIONS).configure(
        log_predictions=True
    )
    with jupyter_server(tmp, store) as (url, token):
        yield url, token, store


def rest(url: str, token: str, method: str = "GET", **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"token {token}", **kwargs.pop("headers", {})}
    return requests.request(
        method, f"{url}/mlhandler/titanic", headers=headers, timeout=120, **kwargs
    )


def stored_feedback(store: Path) -> pd.DataFrame:
    return feedback.read(store / "titanic")


def predict_on_the_page(page: Any) -> str:
    """Predict the guide's passenger with the page's form; the id its answer carried."""
    with page.expect_response(  # a classifier's answer: one predict_proba POST
        lambda r: "_action=predict_proba" in r.url and "/mlhandler/" in r.url
    ) as answer:
        predict_the_guide_passenger(page)
    ids = answer.value.headers.get("x-prediction-id", "")
    assert re.fullmatch(r"[0-9a-f]{12}-\d+", ids), ids
    return ids


def test_feedback_on_the_page_is_stored_and_the_monitor_shows_it(
    server: tuple[str, str, Path],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, token, store = server
    version = MLModel("titanic", store=store).info()["version"]
    # traffic first, over REST: 300 passengers whose fares are five times the training data's
    rows = pd.read_csv(TITANIC).sample(300, random_state=0)[FEATURES]
    reply = rest(
        url, token, "POST", params={"_action": "predict"},
        data=rows.assign(Fare=rows["Fare"] * 5).to_json(orient="records"),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    before = len(stored_feedback(store))

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/mlhandler/titanic?token={token}")

            # the Monitor: the traffic, and drift on the shifted feature only, highlighted
            monitor = page.locator("#monitor-section")
            expect(monitor.locator("h2")).to_have_text("Monitor")
            expect(page.locator("#monitor-records")).to_have_attribute("data-records", "300")
            expect(page.locator("#monitor-traffic svg")).to_have_count(2)
            expect(page.locator(f'#monitor-versions tr[data-version="{version}"]')).to_contain_text(
                "300"
            )
            fare = page.locator('#monitor-drift-table tr[data-feature="Fare"]')
            expect(fare).to_have_class("drift-warn")
            expect(fare).to_contain_text("shift")
            expect(page.locator("#monitor-drift-table tr.drift-warn")).to_have_count(1)
            expect(page.locator('#monitor-drift-table tr[data-feature="Sex"]')).to_have_attribute(
                "data-warning", "false"
            )
            expect(page.locator("#monitor-warnings")).to_contain_text("Fare: PSI")
            expect(page.locator('details.drift-detail[data-feature="Fare"] svg')).to_be_visible()
            expect(page.locator("#monitor-no-feedback")).to_contain_text("No feedback yet")

            # predict on the page: feedback controls for exactly the answer's id
            pid = predict_on_the_page(page)
            expect(page.locator("#feedback-form")).to_have_attribute("data-ids", pid)

            # an actual value the model does not know: the server's words, nothing stored
            page.fill("#feedback-actual", "7")
            page.click("#feedback-wrong")
            expect(page.locator("#feedback-result .error")).to_contain_text(
                "to be a class of model 'titanic' (0, 1)"
            )
            assert len(stored_feedback(store)) == before

            # "wrong, the actual value was 1": confirmed, and stored as said
            page.fill("#feedback-actual", "1")
            page.click("#feedback-wrong")
            expect(page.locator("#feedback-stored")).to_have_text(
                f"Stored for prediction {pid}: wrong; the actual value was 1."
            )
            records = stored_feedback(store)
            assert len(records) == before + 1
            mine = records.iloc[-1]
            assert mine["id"] == pid and mine["flag"] == "wrong" and pd.isna(mine["note"])
            assert json.loads(mine["actual"]) == 1  # typed as the target: the class 1
            assert json.loads(mine["prediction"]) == 0 and mine["caller"] == "owner"
            # the id is the log's record of the page's answer (GET ?_log)
            log = rest(url, token, params={"_log": ""}).json()
            (logged,) = [r for r in log if r["id"] == pid]
            assert logged["face"] == "post" and logged["prediction"] == 0
            assert set(logged["proba"]) == {"0", "1"}
            assert len(log) == 301  # the 300 rows sent over REST, and one per click
            assert logged["input"]["Sex"] == "male" and logged["input"]["Fare"] == 7.25

            # the Monitor reads again: the live metric of the version, on that one label
            row = page.locator(f'#monitor-metrics tr[data-version="{version}"]')
            expect(row.locator(".metric-name")).to_have_text("accuracy")
            expect(row.locator(".metric-value")).to_have_text("0")
            expect(row.locator("td").nth(4)).to_have_text("1")  # labelled rows
            expect(page.locator("#monitor-feedback svg")).to_be_visible()
            answer = rest(url, token, params={"_monitor": ""}).json()
            (live,) = answer["feedback"]
            assert (live["accuracy"], live["labelled"], live["wrong_flags"]) == (0.0, 1, 1)
            assert not errors, errors
        finally:
            browser.close()


def test_a_viewer_gives_feedback_on_its_own_answer_and_sees_no_monitor(
    server: tuple[str, str, Path],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _, store = server
    key = MLModel("titanic", store=store).share(role="viewer", label="feedback app")["key"]
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            # every request of the page sends the key, as a program's browser would
            context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {key}"})
            page = context.new_page()
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/mlhandler/titanic")
            expect(page.locator("#role")).to_have_text("viewer")
            expect(page.locator("#monitor-section")).to_have_count(0)
            pid = predict_on_the_page(page)
            page.fill("#feedback-note", "looks right to me")
            page.click("#feedback-right")
            expect(page.locator("#feedback-stored")).to_have_text(
                f"Stored for prediction {pid}: right; note: looks right to me."
            )
            records = stored_feedback(store)
            mine = records[records["id"] == pid]
            assert len(mine) == 1
            assert mine["flag"].iat[0] == "right" and pd.isna(mine["actual"].iat[0])
            assert mine["note"].iat[0] == "looks right to me"
            assert mine["caller"].iat[0].startswith("key 'feedback app' (")
            # a new prediction: the old answer's controls go, the new answer's come
            page.fill('#single-form [name="Age"]', "40")
            page.click("#single-submit")
            expect(page.locator("#feedback-form")).not_to_have_attribute("data-ids", pid)
            expect(page.locator("#feedback-stored")).to_have_count(0)
            assert not errors, errors
        finally:
            browser.close()


def test_the_monitor_shows_a_shadow_version_side_by_side(server: tuple[str, str, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, token, store = server
    reply = rest(url, token, "PUT", params={"_model": "", "C": "0.05"})
    assert reply.status_code == 200, reply.text
    reply = rest(url, token, "POST", params={"_action": "retrain"})
    assert reply.status_code == 200, reply.text
    serving = reply.json()["version"]
    shadow = serving - 1  # the version before answers in the new one's shadow
    reply = rest(url, token, "PUT", params={"_model": "", "shadow": str(shadow)})
    assert reply.status_code == 200, reply.text
    rows = pd.read_csv(TITANIC).sample(120, random_state=1)
    reply = rest(
        url, token, "POST", params={"_action": "predict"},
        data=rows[FEATURES].to_json(orient="records"), headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    ids = reply.headers["X-Prediction-Id"].split(",")
    labels = [{"id": i, "actual": int(a)} for i, a in zip(ids, rows["Survived"], strict=True)]
    reply = rest(
        url, token, "POST", params={"_action": "feedback"}, data=json.dumps(labels[:60]),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    expected = rest(url, token, params={"_monitor": ""}).json()["shadow"]
    assert (expected["version"], expected["serving_version"]) == (shadow, serving)

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/mlhandler/titanic?token={token}")
            serving_box, shadow_box = (
                page.locator("#shadow-serving"),
                page.locator("#shadow-shadow"),
            )
            expect(serving_box).to_contain_text(f"serving: version {serving}")
            expect(shadow_box).to_contain_text(f"shadow: version {shadow}")
            for box, side in ((serving_box, "serving"), (shadow_box, "candidate")):
                value = page.evaluate("(v) => fmt(v)", expected[side]["value"])
                expect(box.locator(".shadow-value")).to_have_text(value)
                expect(box).to_contain_text(f"accuracy on {expected['labelled']} labelled rows")
            expect(page.locator("#shadow-agreement")).to_contain_text(
                f"{expected['rows']} rows answered by both"
            )
            assert not errors, errors
        finally:
            browser.close()
