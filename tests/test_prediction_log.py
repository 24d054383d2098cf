"""The prediction log (issue 29, docs/monitoring.md): every face logs the same record for the
same input, the ids in the answers are the log's, the sample rate and the size cap hold, a
viewer's predictions are logged but only a trainer reads or deletes the log, and a server
killed with SIGKILL loses at most its unflushed buffer while the log stays readable.

No timing assertions: a test waits on states (``?_log`` until the records appear) within a
generous bound."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER
from rest_helpers import assert_clean_error, call, titanic_server_config

from mlwidget import MLModel, predlog, predlog_files, predlog_read
from mlwidget.errors import BadRequest
from mlwidget.keys import KeyRing

PASSENGER = {k: str(v) for k, v in GUIDE_PASSENGER.items()}
FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
TYPED = {"Pclass": 3.0, "Sex": "male", "Age": 22.0, "SibSp": 1.0, "Parch": 0.0, "Fare": 7.25}
TYPED = {**TYPED, "Embarked": "S"}  # the passenger as the model reads it, from any face


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv, executor="thread")


def v2_body(row: dict) -> str:
    inputs = [
        {
            "name": f,
            "datatype": "BYTES" if isinstance(row[f], str) else "FP64",
            "shape": [1],
            "data": [row[f]],
        }
        for f in FEATURES
    ]
    return json.dumps({"inputs": inputs, "outputs": [{"name": "predict"}]})


async def read_log(jp_fetch, **params: str) -> list[dict]:
    reply = await call(jp_fetch, "mlhandler", "titanic", params={"_log": "", **params})
    assert reply.code == 200, reply.text
    return reply.json()


# ------------------------------------------------------------------------- every face


async def test_every_face_logs_the_same_record(jp_fetch, store_dir):
    # off by default: no id, nothing logged
    reply = await call(jp_fetch, "mlhandler", "titanic", params=PASSENGER)
    assert reply.code == 200 and "X-Prediction-Id" not in reply.headers
    put = await call(
        jp_fetch, "mlhandler", "titanic", method="PUT",
        params={"_model": "", "log_predictions": "true", "log_python": "true"},
    )  # fmt: skip
    assert put.code == 200, put.text
    assert (await read_log(jp_fetch)) == []
    ids: dict[str, list[str]] = {}
    for face in ("get-worker-or-loop", "get"):  # the first may load; the second is the fast path
        reply = await call(jp_fetch, "mlhandler", "titanic", params=PASSENGER)
        ids[face] = reply.headers["X-Prediction-Id"].split(",")
    body = json.dumps([GUIDE_PASSENGER, {**GUIDE_PASSENGER, "Sex": "female"}])
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST", params={"_action": "predict"},
        body=body, headers={"Content-Type": "application/json"},
    )  # fmt: skip
    ids["post"] = reply.headers["X-Prediction-Id"].split(",")
    assert len(ids["post"]) == 2 and len(set(ids["post"])) == 2  # one id per row
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST", params={"_action": "predict_proba"},
        body=json.dumps([GUIDE_PASSENGER]), headers={"Content-Type": "application/json"},
    )  # fmt: skip
    ids["post-proba"] = reply.headers["X-Prediction-Id"].split(",")
    reply = await call(
        jp_fetch, "mlhandler", "v2", "models", "titanic", "infer", method="POST",
        body=v2_body({**GUIDE_PASSENGER, "Pclass": "3", "Parch": "0"}),
    )  # fmt: skip
    assert reply.code == 200, reply.text
    ids["v2"] = reply.json()["id"].split(",")
    model = MLModel.open("titanic", store=store_dir, executor="thread")
    form = model.widget().predict
    form.set_row({k: v for k, v in GUIDE_PASSENGER.items() if k in form.inputs})
    form.predict()
    ids["widget"] = form.prediction_ids
    answer = model.predict(GUIDE_PASSENGER)
    ids["python"] = model.last_prediction_ids

    records = await read_log(jp_fetch)
    by_id = {r["id"]: r for r in records}
    assert len(by_id) == len(records) == 8  # 2 GET, 2 POST rows, proba, V2, widget, Python
    expected_faces = {
        "get-worker-or-loop": "get", "get": "get", "post": "post", "post-proba": "post",
        "v2": "v2", "widget": "widget", "python": "python",
    }  # fmt: skip
    version = model.info()["version"]
    for face, face_ids in ids.items():
        first = by_id[face_ids[0]]  # every id an answer carried is in the log
        assert first["face"] == expected_faces[face], face
        assert first["input"] == TYPED, face  # the row as the model reads it
        assert first["prediction"] == answer[0], face
        assert first["version"] == version and first["caller"], face
        assert first["latency_ms"] >= 0
    assert by_id[ids["post"][1]]["input"] == {**TYPED, "Sex": "female"}
    assert by_id[ids["post-proba"][0]]["proba"].keys() == {"0", "1"}
    assert by_id[ids["widget"][0]]["proba"] is not None
    assert by_id[ids["get"][0]]["proba"] is None
    assert by_id[ids["python"][0]]["caller"] == "owner"
    # the filters, and the files
    assert len(await read_log(jp_fetch, limit="3")) == 3
    assert [r["id"] for r in await read_log(jp_fetch, limit="1")] == [records[-1]["id"]]
    assert await read_log(jp_fetch, since="2999-01-01") == []
    assert await read_log(jp_fetch, until="2000-01-01T00:00:00Z") == []
    assert len(await read_log(jp_fetch, version=str(version))) == 8
    assert await read_log(jp_fetch, version=str(version + 1)) == []
    csv = await call(jp_fetch, "mlhandler", "titanic", params={"_log": "", "_format": "csv"})
    assert csv.code == 200 and csv.text.count("\n") == 9  # a header and 8 records
    parquet = await call(
        jp_fetch, "mlhandler", "titanic", params={"_log": "", "_format": "parquet"}
    )
    assert parquet.code == 200 and parquet.body[:4] == b"PAR1"


async def test_bad_filters_and_options_are_400(jp_fetch):
    for params, words in [
        ({"since": "soon"}, "since as an ISO 8601 time"),
        ({"until": "2024-13-45"}, "until as an ISO 8601 time"),
        ({"limit": "0"}, "limit to be a whole number"),
        ({"limit": "ten"}, "limit to be a whole number"),
        ({"version": "-1"}, "version to be a whole number"),
        ({"_format": "xlsx"}, "_format=json or csv or parquet"),
    ]:
        reply = await call(jp_fetch, "mlhandler", "titanic", params={"_log": "", **params})
        assert_clean_error(reply, 400, words)
    for key, value in [("log_sample", "0"), ("log_sample", "2"), ("log_max_mb", "-1"),
                       ("log_days", "x"), ("log_predictions", "maybe")]:  # fmt: skip
        reply = await call(
            jp_fetch, "mlhandler", "titanic", method="PUT", params={"_model": "", key: value}
        )
        assert_clean_error(reply, 400, key)
    reply = await call(jp_fetch, "mlhandler", "titanic", method="DELETE",
                       params={"_log": "", "_model": ""})  # fmt: skip
    assert_clean_error(reply, 400, "?_log alone")
    info = (await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})).json()
    assert info["fitted"]  # nothing was deleted


# ------------------------------------------------------------------------------ roles


async def test_a_viewer_is_logged_but_only_a_trainer_reads_the_log(jp_fetch, store_dir):
    MLModel.open("titanic", store=store_dir).configure(log_predictions=True)
    ring = KeyRing(store_dir)
    viewer = ring.create("viewer", "titanic", label="sales app")[1]
    trainer = ring.create("trainer", "titanic", label="analyst")[1]
    reply = await call(jp_fetch, "mlhandler", "titanic", params=PASSENGER, headers=bearer(viewer))
    assert reply.code == 200
    (viewer_id,) = reply.headers["X-Prediction-Id"].split(",")
    for method in ("GET", "DELETE"):
        reply = await call(
            jp_fetch, "mlhandler", "titanic", method=method, params={"_log": ""},
            headers=bearer(viewer),
        )  # fmt: skip
        assert_clean_error(reply, 403, "needs the trainer role")
    reply = await call(
        jp_fetch, "mlhandler", "titanic", params={"_log": ""}, headers=bearer(trainer)
    )
    assert reply.code == 200, reply.text
    (record,) = reply.json()
    assert record["id"] == viewer_id and record["caller"].startswith("key 'sales app' (")
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="DELETE", params={"_log": ""},
        headers=bearer(trainer),
    )  # fmt: skip
    assert reply.code == 200 and reply.json()["deleted"] == ["log"], reply.text
    assert await read_log(jp_fetch) == []


# ------------------------------------------------------------- sample rate and size cap


def test_the_sample_rate_keeps_every_kth_answer(store_dir, titanic_csv):
    model = MLModel(
        "titanic", data=str(titanic_csv), store=store_dir, executor="thread",
        log_predictions=True, log_python=True, log_sample=0.25, **GUIDE_OPTIONS,
    )  # fmt: skip
    kept = []
    for _ in range(40):
        model.predict([GUIDE_PASSENGER, GUIDE_PASSENGER])
        kept += model.last_prediction_ids
    frame = predlog_read.read(model)
    assert len(kept) == 20 and list(frame["id"]) == kept  # 10 answers of 2 rows each
    with pytest.raises(BadRequest, match="log_sample"):
        model.configure(log_sample=0)


def test_past_the_size_cap_the_oldest_segments_go(store_dir, titanic_csv):
    model = MLModel(
        "titanic", data=str(titanic_csv), store=store_dir, executor="thread",
        log_predictions=True, log_python=True, **GUIDE_OPTIONS,
    )  # fmt: skip
    folder = model.snapshot().folder
    model.predict([GUIDE_PASSENGER] * 20)
    predlog.flush(folder)
    (one,) = predlog_files.segments(folder)
    cap = one.stat().st_size * 3.5  # room for three segments of this size
    model.configure(log_max_mb=cap / 1024 / 1024)
    written = []
    for _ in range(10):
        model.predict([GUIDE_PASSENGER] * 20)
        written.append(model.last_prediction_ids)
        predlog.flush(folder)  # one segment each
    left = predlog_files.segments(folder)
    assert 1 <= len(left) <= 3  # of the 11 written
    assert sum(path.stat().st_size for path in left) <= cap
    ids = list(predlog_read.read(model)["id"])
    assert ids == [i for batch in written[-len(left) :] for i in batch]  # the newest stayed


# ------------------------------------------------------------------------------- crash


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_server_loses_at_most_its_buffer(tmp_path, titanic_csv):
    from test_server_crash import Server

    store = tmp_path / "store"
    MLModel(
        "titanic", data=str(titanic_csv), store=store, executor="thread",
        log_predictions=True, **GUIDE_OPTIONS,
    )  # fmt: skip
    url = "/mlhandler/titanic"

    def predict(server: Server) -> list[str]:
        reply = requests.get(server.url + url, params=PASSENGER, headers=server.headers, timeout=60)
        assert reply.status_code == 200, reply.text
        return reply.headers["X-Prediction-Id"].split(",")

    def log(server: Server) -> list[dict]:
        reply = requests.get(server.url + url, params={"_log": ""}, headers=server.headers,
                             timeout=60)  # fmt: skip
        assert reply.status_code == 200, reply.text
        return reply.json()

    server = Server(tmp_path, store).start()
    try:
        flushed = [i for _ in range(20) for i in predict(server)]
        deadline = time.monotonic() + 60  # a bound, not a measurement
        while len(log(server)) < 20:
            assert time.monotonic() < deadline, "the records did not appear"
            time.sleep(0.1)
        buffered = [i for _ in range(30) for i in predict(server)]
        server.kill()
    finally:
        server.stop()
    # a half-written segment, as a kill in the middle of a write leaves
    (store / "titanic" / "log" / ".seg-0000000000000-1-1.parquet.tmp").write_bytes(b"PAR1\x00")
    again = Server(tmp_path, store).start()
    try:
        records = log(again)
        ids = [r["id"] for r in records]
        assert len(ids) == len(set(ids))
        assert set(flushed) <= set(ids) <= set(flushed + buffered)
        assert all(r["input"] == TYPED and r["face"] == "get" for r in records)
        new = predict(again)  # the restarted server logs on, under new ids
        assert not set(new) & set(flushed + buffered)
        assert [r["id"] for r in log(again)][-1] == new[0]
    finally:
        again.stop()
