"""The Open Inference Protocol (V2) on the in-process Jupyter server: every way an input may
arrive, per-version inference, and every refusal (a 4xx with the protocol's error)."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS
from rest_helpers import assert_clean_error, call

from mlwidget import MLModel

FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]


@pytest.fixture
def jp_server_config(store_dir: Path) -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
        "MLWidgetApp": {"store_dir": str(store_dir), "executor": "thread"},
    }


@pytest.fixture
def titanic(store_dir: Path, titanic_csv: Path) -> MLModel:
    model = MLModel(
        "titanic", data=str(titanic_csv), store=store_dir, executor="thread", **GUIDE_OPTIONS
    )
    model.configure({"class": "DecisionTreeClassifier", "max_depth": 3, "random_state": 0})
    model.retrain()  # version 2 serves; version 1 is the logistic regression
    return model


@pytest.fixture
def rows(titanic_csv: Path) -> pd.DataFrame:
    return pd.read_csv(titanic_csv)[FEATURES].head(50)


def columnar(rows: pd.DataFrame, schema: dict[str, str]) -> list[dict]:
    inputs = []
    for name in FEATURES:
        values = rows[name].tolist()
        if schema[name] == "BYTES":
            data = ["" if v != v else str(v) for v in values]
        else:
            data = [None if v != v else float(v) for v in values]
        inputs.append({"name": name, "datatype": schema[name], "shape": [len(rows)], "data": data})
    return inputs


async def v2(jp_fetch, *parts: str, body: object = None, **kwargs):
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body)
    method = "POST" if body is not None else "GET"
    return await call(jp_fetch, "mlhandler", "v2", *parts, method=method, body=body, **kwargs)


async def test_metadata_ready_and_health(jp_fetch, titanic):
    assert (await v2(jp_fetch)).json()["name"] == "mlwidget"
    assert (await v2(jp_fetch, "health", "live")).json() == {"live": True}
    assert (await v2(jp_fetch, "health", "ready")).json() == {"ready": True}
    meta = (await v2(jp_fetch, "models", "titanic")).json()
    assert [i["name"] for i in meta["inputs"]] == FEATURES
    assert (
        meta["versions"] == ["1", "2"] and meta["parameters"]["class"] == "DecisionTreeClassifier"
    )
    proba = next(o for o in meta["outputs"] if o["name"] == "predict_proba")
    assert proba["shape"] == [-1, 2] and proba["parameters"]["classes"] == [0, 1]
    old = (await v2(jp_fetch, "models", "titanic", "versions", "1")).json()
    assert old["parameters"]["version"] == 1 and old["inputs"] == meta["inputs"]
    ready = await v2(jp_fetch, "models", "titanic", "versions", "1", "ready")
    assert ready.json() == {"name": "titanic", "ready": True}
    MLModel("unfitted", store=titanic.store)
    assert_clean_error(await v2(jp_fetch, "models", "unfitted", "ready"), 404, "not ready")


async def test_infer_every_way_inputs_arrive(jp_fetch, titanic, rows):
    meta = (await v2(jp_fetch, "models", "titanic")).json()
    schema = {i["name"]: i["datatype"] for i in meta["inputs"]}
    expected = titanic.predict(rows)
    body = {
        "id": "r1",
        "inputs": columnar(rows, schema),
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    answer = (await v2(jp_fetch, "models", "titanic", "infer", body=body)).json()
    assert answer["id"] == "r1" and answer["model_version"] == "2"
    predict, proba = answer["outputs"]
    assert predict["data"] == expected and predict["datatype"] == "INT64"
    assert proba["shape"] == [50, 2] and len(proba["data"]) == 100

    # one 2-D input whose columns are named in its parameters, rows nested
    grid = [[None if v != v else v for v in row] for row in rows.astype(object).values.tolist()]
    body = {
        "inputs": [
            {
                "name": "rows",
                "datatype": "BYTES",
                "shape": [50, 7],
                "data": grid,
                "parameters": {"columns": FEATURES},
            }
        ]
    }
    answer = (await v2(jp_fetch, "models", "titanic", "infer", body=body)).json()
    assert answer["outputs"][0]["data"] == expected

    # BYTES in base64
    inputs = columnar(rows, schema)
    for item in inputs:
        if item["datatype"] == "BYTES":
            item["data"] = [base64.b64encode(v.encode()).decode() for v in item["data"]]
            item["parameters"] = {"content_type": "base64"}
    answer = (await v2(jp_fetch, "models", "titanic", "infer", body={"inputs": inputs})).json()
    assert answer["outputs"][0]["data"] == expected

    # the binary data extension: the JSON header, then each input's bytes
    head_inputs, blobs = [], []
    for item in columnar(rows, schema):
        if item["datatype"] == "BYTES":
            raw = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in item["data"])
        else:
            raw = struct.pack(
                f"<{len(item['data'])}d", *[float("nan") if v is None else v for v in item["data"]]
            )
        blobs.append(raw)
        head_inputs.append(
            {k: v for k, v in item.items() if k != "data"}
            | {"parameters": {"binary_data_size": len(raw)}}
        )
    head = json.dumps({"inputs": head_inputs}).encode()
    reply = await v2(
        jp_fetch, "models", "titanic", "infer", body=head + b"".join(blobs),
        headers={"Inference-Header-Content-Length": str(len(head))},
    )  # fmt: skip
    assert reply.code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == expected

    # an older version, at its own path, answers as that version did
    answer = (
        await v2(
            jp_fetch,
            "models",
            "titanic",
            "versions",
            "1",
            "infer",
            body={
                "inputs": columnar(rows, schema),
                "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
            },
        )
    ).json()
    titanic.rollback(1)
    assert answer["model_version"] == "1"
    assert answer["outputs"][0]["data"] == titanic.predict(rows)


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"{not json", 400, ["invalid JSON"]),
        (b"[1, 2]", 400, ["inference request object"]),
        (b"[" * 5000 + b"]" * 5000, 400, ["nested too deeply"]),
        ({"inputs": []}, 400, ["non-empty list"]),
        ({"inputs": [1]}, 400, ['"name"']),
        ({"inputs": [{"name": "Age", "datatype": "FP128", "shape": [1], "data": [1]}]}, 400, ["FP128"]),
        ({"inputs": [{"name": "Age", "datatype": "FP64", "shape": [2], "data": [1]}]}, 400, ["holds 2 values"]),
        ({"inputs": [{"name": "Age", "datatype": "FP64", "shape": "2", "data": [1]}]}, 400, ["shape"]),
        ({"inputs": [{"name": "Age", "datatype": "FP64", "shape": [1]}]}, 400, ["no data"]),
        ({"inputs": [{"name": "Age", "datatype": "FP64", "shape": [1], "data": 5}]}, 400, ["a list"]),
        ({"inputs": [{"name": "Age", "datatype": "FP64", "shape": [1], "data": [[[[1]]]]}]}, 400, ["nested"]),
        ({"inputs": [{"name": "Sex", "datatype": "BYTES", "shape": [1], "data": ["!!"], "parameters": {"content_type": "base64"}}]}, 400, ["not base64"]),
        ({"inputs": [{"name": "Age", "datatype": "FP64", "shape": [1], "data": [1], "parameters": [1]}]}, 400, ["parameters"]),
        ({"inputs": [{"name": "Age", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}, 400, ["columns"]),
        ({"inputs": [{"name": "Age", "datatype": "FP64", "shape": [1], "data": [1]}, {"name": "Fare", "datatype": "FP64", "shape": [2], "data": [1, 2]}]}, 400, ["same number of rows"]),
        ({"inputs": [{"name": "Age", "datatype": "FP64", "shape": [1], "data": [1]}]}, 400, ["missing 'Pclass'"]),
        ({"inputs": [{"name": "Age", "datatype": "FP64", "shape": [1], "data": [1]}], "outputs": [{"name": "explain"}]}, 400, ["explain"]),
        ({"inputs": [{"name": "Age", "datatype": "FP64", "shape": [1], "data": [1]}], "outputs": "predict"}, 400, ["outputs"]),
        ({"inputs": [{"name": "Age", "datatype": "FP64", "shape": [1], "parameters": {"binary_data_size": 99}}]}, 400, ["beyond the body"]),
    ],
)  # fmt: skip
async def test_bad_requests_get_the_protocols_error(jp_fetch, titanic, body, status, words):
    before = titanic.info()["commit"]
    reply = await v2(jp_fetch, "models", "titanic", "infer", body=body)
    assert_clean_error(reply, status, *words)
    assert titanic.info()["commit"] == before


async def test_bad_binary_headers_and_unknown_models(jp_fetch, titanic):
    for header, words in [("many", "byte count"), ("999999", "body has")]:
        reply = await v2(
            jp_fetch,
            "models",
            "titanic",
            "infer",
            body=b"{}",
            headers={"Inference-Header-Content-Length": header},
        )
        assert_clean_error(reply, 400, words)
    assert_clean_error(await v2(jp_fetch, "models", "nope"), 404, "nope")
    reply = await v2(jp_fetch, "models", "titanic", "versions", "7", "infer", body={"inputs": []})
    assert_clean_error(reply, 404, "no version '7'", "keeps 1, 2")
    # a text value where a number belongs: the model's own cast names it
    inputs = [{"name": f, "datatype": "BYTES", "shape": [1], "data": ["x"]} for f in FEATURES]
    reply = await v2(jp_fetch, "models", "titanic", "infer", body={"inputs": inputs})
    assert_clean_error(reply, 400, "Expected a number", "got 'x'")
    reply = await v2(
        jp_fetch, "models", "titanic", "versions", "1", "infer", body={"inputs": inputs}
    )
    assert_clean_error(reply, 400)


class TestCeilings:
    """A V2 request is held to the same ceilings as the MLHandler API's bodies."""

    @pytest.fixture
    def jp_server_config(self, store_dir: Path) -> dict:
        return {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {
                "store_dir": str(store_dir),
                "executor": "thread",
                "max_body_size": 20_000,
                "max_table_cells": 700,
            },
        }

    @pytest.fixture(autouse=True)
    def restore_ceilings(self):
        """The server sets the process-wide table ceiling: put it back afterwards."""
        from mlwidget import limits

        before = limits.current()
        yield
        limits.configure(before)

    async def test_body_and_table_ceilings(self, titanic, rows, jp_fetch):
        meta = (await v2(jp_fetch, "models", "titanic")).json()
        schema = {i["name"]: i["datatype"] for i in meta["inputs"]}
        small = {"inputs": columnar(rows.head(10), schema)}
        reply = await v2(jp_fetch, "models", "titanic", "infer", body=small)
        assert reply.code == 200, reply.text
        # 101 rows x 7 features = 707 values: over the 700-value ceiling, refused before predicting
        more = pd.concat([rows, rows, rows], ignore_index=True).head(101)
        reply = await v2(
            jp_fetch, "models", "titanic", "infer", body={"inputs": columnar(more, schema)}
        )
        assert_clean_error(reply, 413, "max_table_cells")
        huge = [{"name": "Age", "datatype": "FP64", "shape": [10**9], "data": [1]}]
        reply = await v2(jp_fetch, "models", "titanic", "infer", body={"inputs": huge})
        assert_clean_error(reply, 413, "max_table_cells")
        padded = json.dumps(small) + " " * 30_000
        reply = await v2(jp_fetch, "models", "titanic", "infer", body=padded.encode())
        assert_clean_error(reply, 413, "max_body_size")


def one_row(**values: object) -> dict:
    """A one-row request: numbers as FP64, text (categories too) as BYTES."""
    row = {"Pclass": "3", "Sex": "male", "Age": 22.0, "SibSp": 1.0, "Parch": "0", "Fare": 7.25}
    row = {**row, "Embarked": "S", **values}
    inputs = [
        {
            "name": f,
            "datatype": "BYTES" if isinstance(row[f], str) else "FP64",
            "shape": [1],
            "data": [row[f]],
        }
        for f in FEATURES
    ]
    return {"inputs": inputs}


SMALL_REQUESTS = [  # (body, answered on the event loop once the model is loaded)
    (one_row(), True),
    (one_row(Age=None, Embarked="", Fare=None), True),  # missing values: imputed
    (one_row(Embarked="X", Sex="other", Pclass="4", Parch="9"), True),  # unseen categories
    (one_row(Pclass=1.0, Sex="female") | {"outputs": [{"name": "predict_proba"}]}, True),
    (one_row(Age="31") | {"id": "a", "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}, True),
    (one_row(Age="abc"), False),  # a word where a number belongs: the worker's 400
    (one_row() | {"outputs": [{"name": "explain"}]}, False),
    ({"inputs": one_row()["inputs"][1:]}, False),  # Pclass missing
    (b"{not json", False),
]  # fmt: skip


async def test_small_requests_on_the_event_loop_answer_as_the_worker(
    jp_fetch, titanic, monkeypatch
):
    """A few rows are answered on the event loop by the loaded, compiled model; the answers
    (and refusals, which go to the worker) are those of the worker path, byte for byte."""
    from mlwidget_server import v2 as v2_module

    real, taken = v2_module.answer_on_loop, []

    def spy(*args: object) -> dict | None:
        out = real(*args)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(v2_module, "answer_on_loop", spy)

    async def answers() -> list[tuple[int, str, dict]]:
        out = []
        for body, _ in SMALL_REQUESTS:
            reply = await v2(jp_fetch, "models", "titanic", "infer", body=body)
            out.append((reply.code, reply.headers.get("Content-Type"), reply.json()))
        return out

    first = await v2(jp_fetch, "models", "titanic", "infer", body=one_row())
    assert taken == [False]  # not loaded yet: the worker loads and compiles it
    taken.clear()
    on_loop = await answers()
    assert taken == [loop for _, loop in SMALL_REQUESTS]
    assert on_loop[0][2] == first.json()
    monkeypatch.setattr(v2_module, "answer_on_loop", lambda *args: None)
    on_worker = await answers()
    assert on_loop == on_worker
    for (code, _, data), (_, loop) in zip(on_loop, SMALL_REQUESTS, strict=True):
        assert code == (200 if loop else 400) and ("error" in data) != loop
    row = {"Pclass": 3, "Sex": "male", "Age": None, "SibSp": 1, "Parch": 0, "Fare": None}
    assert on_loop[1][2]["outputs"][0]["data"] == titanic.predict([{**row, "Embarked": None}])
    proba = on_loop[3][2]["outputs"][0]
    assert proba["name"] == "predict_proba" and proba["shape"] == [1, 2]
    assert on_loop[4][2]["id"] == "a" and on_loop[4][2]["model_version"] == "2"
