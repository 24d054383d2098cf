"""Replay and shadow (issue 29, docs/monitoring.md) on a real Jupyter server with real worker
processes: a candidate version that differs from the serving one on known rows, replayed on the
logged traffic, reports exactly those rows (in its answer, its job and its CSV download) and
each version's accuracy on the labelled feedback; shadow traffic is logged for the candidate,
beside the served answers, and never changes an answer, its ids or its path (the shadow work is
held with a Pause while answers keep coming).

The candidate is the guide's model's second version, a DummyClassifier that always predicts 1:
it differs from the serving LogisticRegression on exactly the rows the latter answers 0.
No timing assertions: the log is read back (which writes the server's waiting records), and the
shadow work is held at its stage by mlwidget.jobs.pause.Pause."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import GUIDE_PASSENGER
from rest_helpers import assert_clean_error, call, settled, titanic_server_config

from mlwidget.jobs.pause import Pause

FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv, executor="process", max_workers=1)


async def put(jp_fetch, **params: str) -> dict:
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="PUT", params={"_model": "", **params}
    )
    assert reply.code == 200, reply.text
    return reply.json()


async def post(jp_fetch, params: dict, body: str = "", headers: dict | None = None):
    return await call(
        jp_fetch, "mlhandler", "titanic", method="POST", params=params, body=body,
        headers=headers or {},
    )  # fmt: skip


async def with_constant_candidate(jp_fetch) -> None:
    """Version 2: a DummyClassifier that always says 1; then version 1 serves again."""
    await put(jp_fetch, **{"class": "DummyClassifier", "strategy": "constant", "constant": "1"})
    reply = await post(jp_fetch, {"_action": "retrain"})
    assert reply.code == 200, reply.text
    assert reply.json()["version"] == 2
    reply = await post(jp_fetch, {"_action": "rollback", "version": "1"})
    assert reply.code == 200, reply.text
    await settled(jp_fetch)


async def predict(jp_fetch, rows: pd.DataFrame) -> tuple[list, list[str]]:
    reply = await post(
        jp_fetch, {"_action": "predict"}, rows.to_json(orient="records"), headers=JSON
    )
    assert reply.code == 200, reply.text
    return reply.json(), reply.headers["X-Prediction-Id"].split(",")


async def read_log(jp_fetch) -> list[dict]:
    reply = await call(jp_fetch, "mlhandler", "titanic", params={"_log": "", "limit": "100000"})
    assert reply.code == 200, reply.text
    return reply.json()


def passengers(titanic_csv: Path, n: int) -> pd.DataFrame:
    return pd.read_csv(titanic_csv).sample(n, random_state=3)


async def test_replay_reports_exactly_the_rows_where_the_candidate_differs(
    jp_fetch, titanic_csv: Path, store_dir: Path
) -> None:
    await with_constant_candidate(jp_fetch)
    await put(jp_fetch, log_predictions="true")
    table = passengers(titanic_csv, 120)
    answers, ids = await predict(jp_fetch, table[FEATURES])
    assert len(ids) == 120 and set(answers) == {0, 1}  # the serving LogisticRegression
    zeros = [i for i, a in zip(ids, answers, strict=True) if a == 0]
    # labels for the first 50 answers: the passengers' real fate
    actual = table["Survived"].tolist()
    items = [{"id": i, "actual": int(a)} for i, a in zip(ids[:50], actual[:50], strict=True)]
    reply = await post(jp_fetch, {"_action": "feedback"}, json.dumps(items), headers=JSON)
    assert reply.code == 200, reply.text
    state_before = (store_dir / "titanic" / "state.json").read_bytes()

    reply = await post(jp_fetch, {"_action": "replay", "version": "2"})
    assert reply.code == 200, reply.text
    out = reply.json()
    assert (out["version"], out["serving_version"], out["rows"]) == (2, 1, 120)
    assert out["differ"] == len(zeros) and out["agree"] == 120 - len(zeros)
    assert out["agreement"] == pytest.approx((120 - len(zeros)) / 120, abs=1e-6)
    # each version's accuracy on the 50 labelled rows, as the test computes it
    right = [a == y for a, y in zip(answers[:50], actual[:50], strict=True)]
    assert out["metric"] == "accuracy" and out["labelled"] == 50
    assert out["serving"]["value"] == pytest.approx(sum(right) / 50, abs=1e-6)
    assert out["candidate"]["value"] == pytest.approx(sum(a == 1 for a in actual[:50]) / 50)
    preview = out["differences"]
    assert [row["id"] for row in preview] == zeros[:20]
    assert all(row["serving"] == 0 and row["candidate"] == 1 for row in preview)
    # every differing row, as a table: exactly the rows the serving version answered 0
    download = out["download"]["url"].split("?", 1)[1]
    query = dict(part.split("=", 1) if "=" in part else (part, "") for part in download.split("&"))
    reply = await call(jp_fetch, "mlhandler", "titanic", params={**query, "_format": "csv"})
    assert reply.code == 200, reply.text
    rows = pd.read_csv(io.BytesIO(reply.body))
    assert rows["id"].tolist() == zeros
    assert set(rows["serving"]) == {0} and set(rows["candidate"]) == {1}
    labelled = dict(zip(ids[:50], actual[:50], strict=True))
    for row in rows.itertuples():
        if row.id in labelled:
            assert row.actual == labelled[row.id]
        else:
            assert pd.isna(row.actual)
    assert set(FEATURES) <= set(rows.columns)
    # a replay changes nothing of the model
    assert (store_dir / "titanic" / "state.json").read_bytes() == state_before


async def test_replay_as_a_job_and_its_refusals(jp_fetch, titanic_csv: Path) -> None:
    reply = await post(jp_fetch, {"_action": "replay", "version": "1"})
    assert_clean_error(reply, 409, "no logged predictions", "log_predictions=true")
    await with_constant_candidate(jp_fetch)
    await put(jp_fetch, log_predictions="true")
    answers, ids = await predict(jp_fetch, passengers(titanic_csv, 40)[FEATURES])

    reply = await post(jp_fetch, {"_action": "replay", "version": "2", "_wait": "false"})
    assert reply.code == 202, reply.text
    job = reply.json()
    assert job["action"] == "replay" and reply.headers["Location"].endswith(job["job"])
    await settled(jp_fetch)
    reply = await call(jp_fetch, "mlhandler", "titanic", params={"_job": job["job"]})
    done = reply.json()
    assert done["status"] == "done", done
    assert done["result"]["differ"] == answers.count(0)
    assert done["result"]["download"]["rows"] == answers.count(0)
    # the newest 10 rows only
    reply = await post(jp_fetch, {"_action": "replay", "version": "2", "limit": "10"})
    assert reply.code == 200 and reply.json()["rows"] == 10
    assert reply.json()["differ"] == answers[-10:].count(0)
    # a window after every logged row: a clear 409 from the job
    reply = await post(jp_fetch, {"_action": "replay", "version": "2", "since": "2999-01-01"})
    assert_clean_error(reply, 409, "no predictions in this window")

    for params, status, words in (
        ({}, 400, ("version to replay",)),
        ({"version": "two"}, 400, ("version number",)),
        ({"version": "9"}, 404, ("no version 9", "keeps 1, 2")),
        ({"version": "2", "since": "yesterday"}, 400, ("ISO 8601",)),
        ({"version": "2", "limit": "0"}, 400, ("limit",)),
    ):
        reply = await post(jp_fetch, {"_action": "replay", **params})
        assert_clean_error(reply, status, *words)
    reply = await post(jp_fetch, {"_action": "replay", "version": "2"}, "Sex\nmale\n")
    assert_clean_error(reply, 400, "no body")


async def test_shadow_traffic_is_logged_for_the_candidate_and_never_changes_the_answer(
    jp_fetch, titanic_csv: Path
) -> None:
    await with_constant_candidate(jp_fetch)
    await put(jp_fetch, log_predictions="true")
    table = passengers(titanic_csv, 30)[FEATURES]
    plain, _ = await predict(jp_fetch, table)
    guide = {k: str(v) for k, v in GUIDE_PASSENGER.items()}
    reply = await call(jp_fetch, "mlhandler", "titanic", params=guide)
    assert reply.code == 200
    plain_get = reply.json()

    # shadow needs a kept version, and the log
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="PUT", params={"_model": "", "shadow": "7"}
    )
    assert_clean_error(reply, 404, "no version 7")
    info = await put(jp_fetch, shadow="2")
    assert info["options"]["shadow"] == 2

    with Pause("shadow") as pause:
        answers, ids = await predict(jp_fetch, table)
        assert answers == plain  # the served answer, as without a shadow
        assert not any(":" in i for i in ids)  # the served rows' ids only
        assert pause.reached.wait(120), "the flusher never reached the shadow work"
        # the shadow work is held: answers still come, from the serving version
        reply = await call(jp_fetch, "mlhandler", "titanic", params=guide)
        assert reply.code == 200 and reply.json() == plain_get
        get_ids = reply.headers["X-Prediction-Id"].split(",")
        assert pause.holding and not pause.expired
    records = await read_log(jp_fetch)
    by_id = {r["id"]: r for r in records}
    for served_id, answer in zip(ids + get_ids, answers + plain_get, strict=True):
        served, shadow = by_id[served_id], by_id[f"{served_id}:v2"]
        assert (served["version"], served["prediction"], served["shadow_of"]) == (1, answer, None)
        assert (shadow["version"], shadow["prediction"]) == (2, 1)
        assert shadow["shadow_of"] == served_id and shadow["input"] == served["input"]
    assert all(r["shadow_of"] is None for r in records if r["version"] == 1)

    # the monitor puts the two side by side; feedback on a served id counts for both
    label = [{"id": i, "actual": 1} for i in ids[:10]]
    reply = await post(jp_fetch, {"_action": "feedback"}, json.dumps(label), headers=JSON)
    assert reply.code == 200, reply.text
    reply = await post(
        jp_fetch, {"_action": "feedback"}, json.dumps([{"id": f"{ids[0]}:v2", "actual": 1}]),
        headers=JSON,
    )  # fmt: skip
    assert_clean_error(reply, 400, "shadow version", ids[0])
    reply = await call(jp_fetch, "mlhandler", "titanic", params={"_monitor": ""})
    shadow = reply.json()["shadow"]
    served_rows = len(ids) + len(get_ids)
    assert (shadow["version"], shadow["serving_version"], shadow["rows"]) == (2, 1, served_rows)
    ones = (answers + plain_get).count(1)
    assert shadow["agree"] == ones
    assert shadow["labelled"] == 10 and shadow["candidate"]["value"] == 1.0
    assert shadow["serving"]["value"] == pytest.approx(answers[:10].count(1) / 10)
    assert reply.json()["records"] == served_rows + len(plain) + 1  # served answers only

    # shadow=none stops it: the next answers have no shadow records
    await put(jp_fetch, shadow="none")
    _, later = await predict(jp_fetch, table.head(3))
    by_id = {r["id"]: r for r in await read_log(jp_fetch)}
    assert all(i in by_id and f"{i}:v2" not in by_id for i in later)
