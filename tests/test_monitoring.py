"""Feedback and the monitor (issue 29, docs/monitoring.md) on a real Jupyter server: feedback by
id and flags from REST and Python, unknown ids refused with nothing stored, the labelled rows
appended to the training data exactly once, drift flagging the one shifted feature, the live
accuracy per version, and the roles (a viewer sends feedback on its own predictions only and
cannot read the monitor).

No timing assertions: the log is read back (which writes the server's waiting records) before
a test looks at it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import GUIDE_PASSENGER
from rest_helpers import assert_clean_error, call, settled, stored, titanic_server_config

from mlwidget import MLModel, drift, feedback, feedback_read, predlog_read
from mlwidget.errors import BadRequest
from mlwidget.keys import KeyRing

FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv, executor="thread")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def passengers(titanic_csv: Path, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` passengers of the training data, their features only."""
    return pd.read_csv(titanic_csv).sample(n, random_state=seed)[FEATURES]


async def logging_on(jp_fetch) -> None:
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="PUT",
        params={"_model": "", "log_predictions": "true"},
    )  # fmt: skip
    assert reply.code == 200, reply.text


async def predict(jp_fetch, rows: pd.DataFrame | list, headers: dict | None = None):
    """POST the rows; their predictions and ids."""
    body = rows.to_json(orient="records") if isinstance(rows, pd.DataFrame) else json.dumps(rows)
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST", params={"_action": "predict"},
        body=body, headers={**JSON, **(headers or {})},
    )  # fmt: skip
    assert reply.code == 200, reply.text
    return reply.json(), reply.headers["X-Prediction-Id"].split(",")


async def send_feedback(jp_fetch, items, headers: dict | None = None, **params: str):
    return await call(
        jp_fetch, "mlhandler", "titanic", method="POST",
        params={"_action": "feedback", **params}, body=json.dumps(items),
        headers={**JSON, **(headers or {})},
    )  # fmt: skip


async def monitor(jp_fetch, **params: str) -> dict:
    reply = await call(jp_fetch, "mlhandler", "titanic", params={"_monitor": "", **params})
    assert reply.code == 200, reply.text
    return reply.json()


async def training_rows(jp_fetch) -> list[dict]:
    reply = await call(jp_fetch, "mlhandler", "titanic", params={"_cache": ""})
    assert reply.code == 200, reply.text
    return reply.json()


async def append_from_feedback(jp_fetch) -> dict:
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST",
        params={"_action": "append", "from": "feedback"},
    )  # fmt: skip
    assert reply.code == 200, reply.text
    return reply.json()


def folder(store_dir: Path) -> Path:
    return store_dir / "titanic"


# ------------------------------------------------------------------------------ feedback


async def test_feedback_by_id_and_flags_from_rest_and_python(jp_fetch, store_dir):
    await logging_on(jp_fetch)
    answers, ids = await predict(jp_fetch, [GUIDE_PASSENGER, {**GUIDE_PASSENGER, "Sex": "female"}])
    reply = await send_feedback(
        jp_fetch,
        [{"id": ids[0], "actual": 1}, {"id": ids[1], "flag": "wrong", "note": "she survived"}],
    )
    assert reply.code == 200, reply.text
    assert reply.json() == {
        "name": "titanic", "stored": 2, "labelled": 1, "flagged": 1, "ids": ids,
    }  # fmt: skip
    reply = await send_feedback(jp_fetch, {"id": ids[1], "flag": "right"})  # one item: an object
    assert reply.code == 200 and reply.json()["flagged"] == 1, reply.text
    model = MLModel.open("titanic", store=store_dir)
    done = model.feedback(id=ids[1], actual="1")  # typed as the target: the class 1
    assert done["labelled"] == 1
    with pytest.raises(BadRequest, match="unknown"):
        model.feedback([{"id": "nobody-0", "actual": 0}])

    records = feedback.read(folder(store_dir))
    assert list(records["id"]) == [ids[0], ids[1], ids[1], ids[1]]
    assert feedback.parsed(records["actual"]) == [1, None, None, 1]
    assert list(records["flag"].fillna("-")) == ["-", "wrong", "right", "-"]
    assert records["note"].iat[1] == "she survived"
    assert feedback.parsed(records["prediction"]) == [answers[0], *[answers[1]] * 3]
    assert json.loads(records["input"].iat[0])["Sex"] == "male"  # the logged input row
    assert set(records["caller"]) == {"owner"}
    # the monitor counts them: per id the latest actual and flag
    (live,) = (await monitor(jp_fetch))["feedback"]
    assert (live["feedback"], live["labelled"], live["flagged"]) == (2, 2, 1)
    right = [answers[0] == 1, answers[1] == 1]  # labelled rows: prediction == actual
    assert live["metric"] == "accuracy" and live["accuracy"] == pytest.approx(sum(right) / 2)


async def test_unknown_ids_and_bad_feedback_are_400_and_nothing_is_stored(jp_fetch, store_dir):
    await logging_on(jp_fetch)
    _, ids = await predict(jp_fetch, [GUIDE_PASSENGER])
    await call(jp_fetch, "mlhandler", "titanic", params={"_log": ""})  # the log is written
    before = stored(store_dir)
    unknown = [f"nobody-{n}" for n in range(8)]
    reply = await send_feedback(jp_fetch, [{"id": ids[0], "actual": 0}] + [
        {"id": i, "actual": 1} for i in unknown
    ])  # fmt: skip
    data = assert_clean_error(reply, 400, "8 unknown", "'nobody-0'", "and 3 more", "Nothing")
    assert "'nobody-7'" not in data["error"]  # a few are named, not all
    for body, words in [
        ("Sex,Age\nmale,22\n", "Expected a JSON body"),
        ([], "non-empty list"),
        ([{"actual": 1}], "to have an id"),
        ([{"id": ids[0]}], "the actual value or a flag"),
        ([{"id": ids[0], "flag": "meh"}], "right or wrong"),
        ([{"id": ids[0], "actual": [1]}], "one value"),
        ([{"id": ids[0], "actual": 1, "colour": "red"}], "got also colour"),
        ([{"id": ids[0], "actual": 7}], "to be a class of model 'titanic' (0, 1)"),
    ]:
        text = body if isinstance(body, str) else json.dumps(body)
        reply = await call(
            jp_fetch, "mlhandler", "titanic", method="POST", params={"_action": "feedback"},
            body=text, headers=JSON,
        )  # fmt: skip
        assert_clean_error(reply, 400, words)
    assert stored(store_dir) == before
    assert feedback.read(folder(store_dir)).empty


# ------------------------------------------------------------------------------ append


async def test_append_from_feedback_adds_exactly_the_labelled_rows_once(
    jp_fetch, store_dir, titanic_csv
):
    await logging_on(jp_fetch)
    rows = passengers(titanic_csv, 5, seed=1)
    _, ids = await predict(jp_fetch, rows)
    before = await training_rows(jp_fetch)
    items = [
        {"id": ids[0], "actual": 1},
        {"id": ids[1], "actual": 0},
        {"id": ids[2], "actual": 0},
        {"id": ids[2], "actual": 1},  # a correction: the latest counts, the id once
        {"id": ids[3], "flag": "wrong"},  # no actual: not a training row
    ]
    assert (await send_feedback(jp_fetch, items)).code == 200
    appended = await append_from_feedback(jp_fetch)
    assert appended == {"rows": len(before) + 3, "appended": 3, "ids": ids[:3]}
    after = await training_rows(jp_fetch)
    assert after[: len(before)] == before and len(after) == len(before) + 3
    added = after[len(before) :]
    assert [r["Survived"] for r in added] == [1, 0, 1]
    for row, (_, given) in zip(added, rows.iloc[:3].iterrows(), strict=True):
        for name in FEATURES:  # the logged input, as the model read it
            if pd.isna(given[name]):
                assert row[name] is None, name
            else:
                assert row[name] == given[name], name
        assert row["Name"] is None  # a column the model does not read stays empty

    # again: nothing new, nothing changes
    snapshot = stored(store_dir)
    assert await append_from_feedback(jp_fetch) == {"rows": len(after), "appended": 0, "ids": []}
    assert stored(store_dir) == snapshot
    # a label given since: only that one
    assert (await send_feedback(jp_fetch, [{"id": ids[4], "actual": 0}])).code == 200
    model = MLModel.open("titanic", store=store_dir)
    assert model.append_feedback() == {"rows": len(after) + 1, "appended": 1, "ids": [ids[4]]}
    assert len(await training_rows(jp_fetch)) == len(after) + 1

    # wrong requests: 400, nothing appended
    for params, body, words in [
        ({"_action": "append", "from": "elsewhere"}, "", "Expected from=feedback"),
        ({"_action": "predict", "from": "feedback"}, "", "with _action=append"),
        ({"_action": "append", "from": "feedback"}, "Sex,Age\nmale,2\n", "no body"),
    ]:
        reply = await call(
            jp_fetch, "mlhandler", "titanic", method="POST", params=params, body=body,
            headers={"Content-Type": "text/csv"},
        )  # fmt: skip
        assert_clean_error(reply, 400, words)
    assert len(await training_rows(jp_fetch)) == len(after) + 1


async def feedback_records(jp_fetch, **params: str) -> list[dict]:
    reply = await call(jp_fetch, "mlhandler", "titanic", params={"_feedback": "", **params})
    assert reply.code == 200, reply.text
    return reply.json()


async def test_feedback_is_listed_filtered_downloaded_and_deleted(jp_fetch, store_dir):
    await logging_on(jp_fetch)
    answers, ids = await predict(jp_fetch, [GUIDE_PASSENGER, {**GUIDE_PASSENGER, "Sex": "female"}])
    given = [{"id": ids[0], "actual": 1}, {"id": ids[1], "flag": "wrong", "note": "she lived"}]
    assert (await send_feedback(jp_fetch, given)).code == 200
    assert (await send_feedback(jp_fetch, {"id": ids[1], "flag": "right"})).code == 200

    found = await feedback_records(jp_fetch)
    assert [(r["id"], r["actual"], r["flag"], r["note"]) for r in found] == [
        (ids[0], 1, None, None), (ids[1], None, "wrong", "she lived"), (ids[1], None, "right", None),
    ]  # fmt: skip
    assert [r["prediction"] for r in found] == [answers[0], answers[1], answers[1]]
    assert found[0]["input"]["Sex"] == "male" and found[1]["input"]["Sex"] == "female"
    assert {r["caller"] for r in found} == {"owner"} and {r["version"] for r in found} == {1}
    assert all(r["time"].endswith("Z") and r["predicted_at"].endswith("Z") for r in found)
    # the log's filters
    assert await feedback_records(jp_fetch, limit="1") == found[-1:]
    assert await feedback_records(jp_fetch, until="2000-01-01") == []
    assert await feedback_records(jp_fetch, version="2") == []
    reply = await call(jp_fetch, "mlhandler", "titanic", params={"_feedback": "", "since": "x"})
    assert_clean_error(reply, 400, "since")
    reply = await call(
        jp_fetch, "mlhandler", "titanic", params={"_feedback": "", "_format": "csv"}
    )  # fmt: skip
    assert reply.code == 200 and "titanic-feedback.csv" in reply.headers["Content-Disposition"]
    table = pd.read_csv(io.StringIO(reply.body.decode()))
    assert list(table["id"]) == [ids[0], ids[1], ids[1]] and list(table["flag"])[1:] == [
        "wrong", "right",
    ]  # fmt: skip

    assert (await append_from_feedback(jp_fetch))["ids"] == [ids[0]]
    # DELETE ?_feedback: alone, then all of it; the appended label stays in the data
    snapshot = stored(store_dir)
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="DELETE", params={"_feedback": "", "_log": ""}
    )  # fmt: skip
    assert_clean_error(reply, 400, "alone")
    assert stored(store_dir) == snapshot
    reply = await call(jp_fetch, "mlhandler", "titanic", method="DELETE", params={"_feedback": ""})
    assert reply.json() == {"name": "titanic", "deleted": ["feedback"], "absent": [], "segments": 2}
    assert await feedback_records(jp_fetch) == []
    reply = await call(jp_fetch, "mlhandler", "titanic", method="DELETE", params={"_feedback": ""})
    assert reply.json()["absent"] == ["feedback"]
    # a label given after the delete is appended: the numbers go on past the appended mark
    assert (await send_feedback(jp_fetch, {"id": ids[1], "actual": 1})).code == 200
    assert (await append_from_feedback(jp_fetch))["ids"] == [ids[1]]
    model = MLModel.open("titanic", store=store_dir)
    frame = feedback_read.read(model, predlog_read.parse_filters({}))
    assert list(frame["id"]) == [ids[1]]


def test_a_segment_removed_while_feedback_is_read_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DELETE ?_feedback removes segments under the feedback lock while readers (?_feedback,
    ?_monitor, a replay, an append of labels) list them without it: a segment listed and then
    removed is read as absent, never a 500."""
    row = {"id": "a-0", "time": pd.Timestamp("2024-05-01", tz="UTC"), "caller": "owner"}
    row.update(actual="1", flag=None, note=None, version=1, prediction="0", input="{}")
    row["predicted_at"] = pd.Timestamp("2024-05-01", tz="UTC")
    feedback.write(tmp_path, [row])
    listed = feedback.segments(tmp_path)
    gone = feedback.feedback_dir(tmp_path) / "fb-0000000002.parquet"  # listed, then removed
    monkeypatch.setattr(feedback, "segments", lambda folder: [*listed, (2, gone)])
    assert list(feedback.read(tmp_path)["id"]) == ["a-0"]


# ------------------------------------------------------------------------------ monitor


async def test_drift_flags_the_shifted_feature_only(jp_fetch, titanic_csv):
    await logging_on(jp_fetch)
    rows = passengers(titanic_csv, 300)
    await predict(jp_fetch, rows)
    calm = await monitor(jp_fetch)
    assert calm["records"] == 300 and calm["warnings"] == [], calm["warnings"]
    assert [f["feature"] for f in calm["drift"]] == FEATURES
    assert not any(f["warning"] for f in calm["drift"])
    assert calm["thresholds"]["psi"] == drift.PSI_WARN

    reply = await call(jp_fetch, "mlhandler", "titanic", method="DELETE", params={"_log": ""})
    assert reply.code == 200, reply.text
    await predict(jp_fetch, rows.assign(Fare=rows["Fare"] * 5))
    shifted = await monitor(jp_fetch)
    flagged = [f["feature"] for f in shifted["drift"] if f["warning"]]
    assert flagged == ["Fare"], shifted["warnings"]
    fare = next(f for f in shifted["drift"] if f["feature"] == "Fare")
    assert fare["kind"] == "number" and fare["psi"] > drift.PSI_WARN and fare["ks_p"] < drift.KS_P
    assert fare["level"] == "shift" and len(fare["bins"]) > 2
    sex = next(f for f in shifted["drift"] if f["feature"] == "Sex")
    assert sex["kind"] == "category" and {c["value"] for c in sex["categories"]} == {
        "male", "female",
    }  # fmt: skip
    assert shifted["warnings"] == [f"Fare: {'; '.join(fare['reasons'])}"]
    # traffic and latency: one version, every row counted
    assert sum(b["count"] for b in shifted["traffic"]) == 300
    (version,) = shifted["versions"]
    assert version["count"] == 300 and version["latency_ms"]["p50"] >= 0
    predictions = shifted["predictions"]
    assert {c["value"] for c in predictions["categories"]} == {"0", "1"}

    for params, words in [
        ({"since": "soon"}, "since as an ISO 8601 time"),
        ({"version": "0"}, "version to be a whole number"),
        ({"_format": "csv"}, "_format=json"),
    ]:
        reply = await call(jp_fetch, "mlhandler", "titanic", params={"_monitor": "", **params})
        assert_clean_error(reply, 400, words)
    later = await monitor(jp_fetch, since="2999-01-01")
    assert later["records"] == 0 and later["traffic"] == [] and later["warnings"] == []


async def test_live_accuracy_on_feedback_per_version(jp_fetch, titanic_csv):
    await logging_on(jp_fetch)
    rows = passengers(titanic_csv, 6, seed=2)
    first, first_ids = await predict(jp_fetch, rows)
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST",
        params={"_action": "retrain"},
    )  # fmt: skip
    assert reply.code == 200, reply.text
    await settled(jp_fetch)
    second, second_ids = await predict(jp_fetch, rows)
    # version 1 was right every time, version 2 wrong every time
    items = [{"id": i, "actual": p} for i, p in zip(first_ids, first, strict=True)]
    items += [{"id": i, "actual": 1 - p} for i, p in zip(second_ids, second, strict=True)]
    assert (await send_feedback(jp_fetch, items)).code == 200
    report = await monitor(jp_fetch)
    live = {item["version"]: item for item in report["feedback"]}
    assert set(live) == {1, 2}
    assert (live[1]["accuracy"], live[1]["labelled"]) == (1.0, 6)
    assert (live[2]["accuracy"], live[2]["labelled"]) == (0.0, 6)
    assert {v["version"]: v["count"] for v in report["versions"]} == {1: 6, 2: 6}
    only = await monitor(jp_fetch, version="2")
    assert only["records"] == 6 and [f["version"] for f in only["feedback"]] == [2]


# ------------------------------------------------------------------------------ roles


async def test_roles_of_feedback_and_the_monitor(jp_fetch, store_dir):
    await logging_on(jp_fetch)
    ring = KeyRing(store_dir)
    viewer = ring.create("viewer", "titanic", label="viewer app")[1]
    trainer = ring.create("trainer", "titanic", label="analyst")[1]
    _, (mine,) = await predict(jp_fetch, [GUIDE_PASSENGER], headers=bearer(viewer))
    _, (theirs,) = await predict(jp_fetch, [GUIDE_PASSENGER])  # the owner's
    reply = await call(jp_fetch, "mlhandler", "titanic", params={"_monitor": ""},
                       headers=bearer(viewer))  # fmt: skip
    assert_clean_error(reply, 403, "needs the trainer role")
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST",
        params={"_action": "append", "from": "feedback"}, headers=bearer(viewer),
    )  # fmt: skip
    assert_clean_error(reply, 403, "needs the trainer role")
    # a viewer sends feedback on the predictions answered to it, not on others'
    reply = await send_feedback(jp_fetch, [{"id": mine, "actual": 1}], headers=bearer(viewer))
    assert reply.code == 200, reply.text
    reply = await send_feedback(
        jp_fetch, [{"id": mine, "flag": "right"}, {"id": theirs, "flag": "wrong"}],
        headers=bearer(viewer),
    )  # fmt: skip
    assert_clean_error(reply, 403, "Nothing was stored", repr(theirs))
    records = feedback.read(folder(store_dir))
    assert list(records["id"]) == [mine]
    assert records["caller"].iat[0].startswith("key 'viewer app' (")
    # a trainer may send feedback on any prediction, and reads the monitor
    reply = await send_feedback(
        jp_fetch, [{"id": theirs, "flag": "wrong"}], headers=bearer(trainer)
    )
    assert reply.code == 200, reply.text
    reply = await call(jp_fetch, "mlhandler", "titanic", params={"_monitor": ""},
                       headers=bearer(trainer))  # fmt: skip
    assert reply.code == 200 and reply.json()["feedback"][0]["feedback"] == 2, reply.text
