"""Creating models without code, and bulk results people read, over REST (a real Jupyter
server, pytest-jupyter): the listing's ``POST ?_action=preview``, ``_format=table`` with
``_proba``, and PUT + ``_action=retrain&_wait=false`` with a file."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import NOTEBOOKS
from rest_helpers import TITANIC, assert_clean_error, call, multipart, titanic_server_config

from mlwidget import MLModel

IRIS = NOTEBOOKS / "iris.csv"
WEIGHT = NOTEBOOKS / "weight.csv"
CSV = {"Content-Type": "text/csv"}
MAX_BODY = 100_000  # bytes: the Titanic CSV (61 kB) fits, 200 kB does not


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv, max_body_size=MAX_BODY)


async def listing(jp_fetch) -> list[dict]:
    reply = await call(jp_fetch, "mlhandler", "")
    assert reply.code == 200, reply.text
    return reply.json()["models"]


async def preview(jp_fetch, body: bytes, headers=CSV, **params: str):
    return await call(
        jp_fetch, "mlhandler", "", method="POST", params={"_action": "preview", **params},
        body=body, headers=headers,
    )  # fmt: skip


async def test_preview_of_iris_and_weight_says_what_model_it_would_make(jp_fetch, store_dir):
    before, stored = await listing(jp_fetch), sorted(p.name for p in store_dir.iterdir())
    reply = await preview(jp_fetch, IRIS.read_bytes())
    assert reply.code == 200, reply.text
    out = reply.json()
    assert out["target"] == "species" and out["kind"] == "classifier"
    assert out["class"] == "RandomForestClassifier"
    assert out["reason"] == "species holds 3 distinct text values, so this is classification"
    assert out["rows"] == len(pd.read_csv(IRIS)) and len(out["preview"]) == 10
    assert [c["name"] for c in out["columns"]][-1] == "species"
    assert out["columns"][-1] == {"name": "species", "dtype": "text", "distinct": 3, "missing": 0}
    # a multipart upload, as a browser sends it, with the target as a form field
    body, headers = multipart([("file", "weight.csv", WEIGHT.read_bytes())], {"target_col": "age"})
    out = (await preview(jp_fetch, body, headers)).json()
    assert out["target"] == "age" and out["kind"] == "regressor"
    assert out["class"] == "RandomForestRegressor" and "so this is regression" in out["reason"]
    out = (await preview(jp_fetch, WEIGHT.read_bytes(), target_col="male")).json()
    assert out["kind"] == "classifier" and "2 distinct whole numbers" in out["reason"]
    # nothing was stored
    assert await listing(jp_fetch) == before
    assert sorted(p.name for p in store_dir.iterdir()) == stored


async def test_preview_errors_are_clear_and_store_nothing(jp_fetch, store_dir):
    before = await listing(jp_fetch)
    reply = await preview(jp_fetch, IRIS.read_bytes(), target_col="Species")
    assert_clean_error(reply, 400, "'Species'", "sepal_length, sepal_width", "species")
    reply = await preview(jp_fetch, b"", headers={})
    assert_clean_error(reply, 400, "needs a table in the request body")
    reply = await preview(jp_fetch, b"\x89PNG\r\n\x1a\n\x00\x00\x00garbage", headers={})
    assert reply.code in (400, 415), reply.text
    assert_clean_error(reply, reply.code)
    reply = await call(
        jp_fetch, "mlhandler", "", method="POST", params={"_action": "retrain"},
        body=IRIS.read_bytes(), headers=CSV,
    )  # fmt: skip
    assert_clean_error(reply, 400, "_action=preview")
    big = b"a,b\n" + b"1,2\n" * 60_000  # 240 kB: over max_body_size
    assert_clean_error(await preview(jp_fetch, big), 413, "max_body_size")
    assert await listing(jp_fetch) == before


async def test_table_format_gives_the_input_predictions_and_whether_they_are_right(jp_fetch):
    titanic = pd.read_csv(TITANIC).head(50)
    titanic.loc[7, "Survived"] = None  # no actual value: not judged
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST", params={"_format": "table"},
        body=titanic.to_csv(index=False), headers=CSV,
    )  # fmt: skip
    assert reply.code == 200, reply.text
    out = reply.json()
    assert out["columns"] == [*titanic.columns, "predicted Survived", "correct"]
    assert out["predicted"] == "predicted Survived" and out["actual"] == "Survived"
    assert out["proba"] == [] and len(out["rows"]) == 50
    table = pd.DataFrame(out["rows"], columns=out["columns"])
    survived = [None if pd.isna(v) else int(v) for v in titanic["Survived"]]
    column = out["columns"].index("Survived")
    assert [row[column] for row in out["rows"]] == survived  # the input's target, untouched
    assert table["Name"].tolist() == titanic["Name"].tolist()  # rows in input order
    judged = table.drop(index=7)
    assert table.loc[7, "correct"] is None
    assert (
        judged["correct"].tolist() == (judged["predicted Survived"] == judged["Survived"]).tolist()
    )
    assert out["score"]["metric"] == "accuracy"
    assert out["score"]["score"] == pytest.approx(judged["correct"].mean())
    # the same predictions as the plain answer
    plain = await call(
        jp_fetch, "mlhandler", "titanic", method="POST", body=titanic.to_csv(index=False),
        headers=CSV,
    )  # fmt: skip
    assert table["predicted Survived"].tolist() == plain.json()
    # without the target column: no score, nothing judged
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST", params={"_format": "table"},
        body=titanic.drop(columns=["Survived"]).to_json(orient="records"),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    out = reply.json()
    assert reply.code == 200, reply.text
    assert out["actual"] is None and out["score"] is None
    assert out["columns"][-1] == "predicted Survived" and "correct" not in out["columns"]
    # _format=table answers at once: as a job it is a clear 400
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST",
        params={"_format": "table", "_wait": "false"}, body=titanic.to_csv(index=False),
        headers=CSV,
    )  # fmt: skip
    assert_clean_error(reply, 400, "_format=records")


async def test_table_format_with_class_probabilities(jp_fetch, store_dir):
    MLModel("iris", data=IRIS, target_col="species", store=store_dir)
    iris = pd.read_csv(IRIS)
    reply = await call(
        jp_fetch, "mlhandler", "iris", method="POST",
        params={"_format": "table", "_proba": "true"}, body=IRIS.read_bytes(), headers=CSV,
    )  # fmt: skip
    assert reply.code == 200, reply.text
    out = reply.json()
    classes = ["P(setosa)", "P(versicolor)", "P(virginica)"]
    assert out["proba"] == classes
    assert out["columns"] == [*iris.columns, "predicted species", *classes, "correct"]
    table = pd.DataFrame(out["rows"], columns=out["columns"])
    assert table[classes].sum(axis=1).round(9).eq(1).all()
    best = table[classes].idxmax(axis=1).str[2:-1]
    assert (best == table["predicted species"]).all()
    assert table["species"].tolist() == iris["species"].tolist()
    assert out["score"]["score"] > 0.9
    reply = await call(
        jp_fetch, "mlhandler", "iris", method="POST",
        params={"_format": "table", "_proba": "maybe"}, body=IRIS.read_bytes(), headers=CSV,
    )  # fmt: skip
    assert_clean_error(reply, 400, "_proba=true or _proba=false")


async def wait_for_job(jp_fetch, name: str, job: str) -> dict:
    deadline = time.monotonic() + 120
    while True:
        reply = await call(jp_fetch, "mlhandler", name, params={"_job": job})
        assert reply.code == 200, reply.text
        state = reply.json()
        if state["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.2)


async def test_create_an_iris_model_without_code(jp_fetch, store_dir):
    # what the page does: preview, PUT the suggestion, retrain with the file as a job
    suggestion = (await preview(jp_fetch, IRIS.read_bytes())).json()
    reply = await call(
        jp_fetch, "mlhandler", "iris-1", method="PUT",
        params={"_model": "", "class": suggestion["class"], "target_col": suggestion["target"]},
    )  # fmt: skip
    assert reply.code == 200, reply.text
    assert reply.json()["fitted"] is None
    body, headers = multipart([("file", "iris.csv", IRIS.read_bytes())])
    reply = await call(
        jp_fetch, "mlhandler", "iris-1", method="POST",
        params={"_action": "retrain", "_wait": "false"}, body=body, headers=headers,
    )  # fmt: skip
    assert reply.code == 202, reply.text
    assert reply.headers["Location"] == reply.json()["url"]
    state = await wait_for_job(jp_fetch, "iris-1", reply.json()["job"])
    assert state["status"] == "done", state
    reply = await call(
        jp_fetch, "mlhandler", "iris-1",
        params={"sepal_length": "5.1", "sepal_width": "3.5", "petal_length": "1.4",
                "petal_width": "0.2"},
    )  # fmt: skip
    assert reply.code == 200 and reply.json() == ["setosa"]
    info = (await call(jp_fetch, "mlhandler", "iris-1", params={"_model": ""})).json()
    assert info["fitted"]["model"] == "RandomForestClassifier" and info["notes"] == []
    assert "iris-1" in [m["name"] for m in await listing(jp_fetch)]


async def test_a_retrain_with_a_target_and_no_class_picks_the_default(jp_fetch, store_dir):
    reply = await call(
        jp_fetch, "mlhandler", "weight", method="PUT",
        params={"_model": "", "target_col": "weight"},
    )  # fmt: skip
    assert reply.code == 200, reply.text
    assert reply.json()["model"] is None
    reply = await call(
        jp_fetch, "mlhandler", "weight", method="POST", params={"_action": "retrain"},
        body=WEIGHT.read_bytes(), headers=CSV,
    )  # fmt: skip
    assert reply.code == 200, reply.text
    answer = reply.json()
    assert answer["model"] == "RandomForestRegressor"
    note = answer["notes"][0]
    assert note.startswith("No class was given: weight holds") and "regression" in note
    info = (await call(jp_fetch, "mlhandler", "weight", params={"_model": ""})).json()
    assert info["model"] == "RandomForestRegressor" and info["notes"] == [note]
    assert info["stale"] is False
    # a model with neither class nor target: a clear 400, nothing trained
    await call(jp_fetch, "mlhandler", "none", method="PUT", params={"_model": "", "cv_folds": "3"})
    reply = await call(
        jp_fetch, "mlhandler", "none", method="POST", params={"_action": "retrain"},
        body=WEIGHT.read_bytes(), headers=CSV,
    )  # fmt: skip
    assert_clean_error(reply, 400, "no model class", "target_col")
    info = (await call(jp_fetch, "mlhandler", "none", params={"_model": ""})).json()
    assert info["fitted"] is None


def store_files(store_dir: Path) -> dict[str, bytes]:
    """Every file of the store (lock files aside) with its bytes: equal before and after a
    refused request."""
    return {
        str(p.relative_to(store_dir)): p.read_bytes()
        for p in sorted(store_dir.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


async def put(jp_fetch, name: str, body: str | None = None, **params: str):
    return await call(jp_fetch, "mlhandler", name, method="PUT", body=body,
                      params={"_model": "", **params})  # fmt: skip


async def test_put_create_only_creates(jp_fetch, store_dir):
    """The listing's New model checked names in the browser, then PUT: a model made since the
    page loaded (or by someone else) was reconfigured and its rows replaced. ``PUT ?_create``
    is a 409 naming the model when it exists, and leaves it exactly as it was."""
    info = (await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})).json()
    assert info["model"] == "LogisticRegression"  # the configured model is made
    before = store_files(store_dir)
    for body, params in (
        (None, {"class": "RandomForestClassifier", "target_col": "species"}),
        ('{"class": "SVC", "exclude": ["Name"]}', {}),
        ('{"class": "NoSuchClass"}', {}),  # the 409 comes first
    ):
        reply = await put(jp_fetch, "titanic", body, _create="", **params)
        data = assert_clean_error(reply, 409, "A model named 'titanic' exists already")
        assert "nothing was created or changed" in data["error"]
    assert store_files(store_dir) == before
    info = (await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})).json()
    assert info["model"] == "LogisticRegression" and info["stale"] is False

    # a new name: created, with the changes; a second create-only PUT is the 409
    reply = await put(jp_fetch, "irises", _create="", **{"class": "SVC", "target_col": "species"})
    assert reply.code == 200, reply.text
    assert reply.json()["model"] == "SVC" and reply.json()["target_col"] == "species"
    made = store_files(store_dir)
    reply = await put(jp_fetch, "irises", _create="", **{"class": "LogisticRegression"})
    assert_clean_error(reply, 409, "'irises' exists already")
    assert store_files(store_dir) == made
    # invalid changes to a new name: 400, nothing made
    reply = await put(jp_fetch, "other", '{"class": "NoSuchClass"}', _create="")
    assert_clean_error(reply, 400, "NoSuchClass")
    assert store_files(store_dir) == made and "other" not in [
        m["name"] for m in await listing(jp_fetch)
    ]
    # without _create, a PUT still changes an existing model (Gramex's behaviour)
    reply = await put(jp_fetch, "irises", **{"class": "LogisticRegression"})
    assert reply.code == 200 and reply.json()["model"] == "LogisticRegression"


@pytest.mark.parametrize("name", ["Titanic", "titanic.", "TITANIC", "tiTanic."])
async def test_names_differing_only_by_case_or_a_trailing_dot_are_409(jp_fetch, store_dir, name):
    await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})  # made at startup
    before = store_files(store_dir)
    for params in ({}, {"_create": ""}):
        reply = await put(jp_fetch, name, **params, **{"class": "SVC"})
        data = assert_clean_error(reply, 409, "A model named 'titanic' exists already")
        assert f"{name!r} differs from it only by case or a trailing dot" in data["error"]
    assert store_files(store_dir) == before
    assert sorted(p.name for p in store_dir.iterdir()) == ["titanic"]
    assert [m["name"] for m in await listing(jp_fetch)] == ["titanic"]


async def test_the_api_document_describes_create_only(jp_fetch):
    from mlwidget import api

    document = (await call(jp_fetch, "mlhandler", "titanic", params={"_openapi": ""})).json()
    put_op = document["paths"]["/mlhandler/titanic"]["put"]
    names = {p.get("name") for p in put_op["parameters"]}
    assert set(api.PUT_KEYS) <= names
    assert "`_create`" in put_op["description"] and "409" in put_op["description"]
