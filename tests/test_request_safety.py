"""A request is untrusted input: nothing it sends may name a server file, folder, URL or
database, at any depth or in any spelling; what it may set is one allow-list (issue 10)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from rest_helpers import assert_clean_error, call, stored, titanic_server_config

from mlwidget import MLModel
from mlwidget.options import from_request

NAME = "titanic"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv)


def attacks(tmp: Path) -> list[tuple[str, Any, str]]:
    """(id, PUT JSON body, the key the error must name)."""
    secret = tmp / "secret.json"
    secret.write_text('{"token": "s3cret"}')
    return [
        ("data nested under model", {"model": {"data": str(secret)}}, "data"),
        ("template nested under model", {"model": {"template": "/proc/self/environ"}}, "template"),
        ("model file path nested", {"model": {"path": str(tmp / "evil.joblib")}}, "path"),
        (
            "database source nested",
            {"model": {"data": {"url": f"sqlite:///{tmp / 'made.db'}", "query": "select 1"}}},
            "data",
        ),
        ("path beside a class", {"class": "LogisticRegression", "path": str(tmp / "x")}, "path"),
        (
            "memory parameter",
            {"class": "AgglomerativeClustering", "memory": str(tmp / "cache")},
            "memory",
        ),
        (
            "memory under params",
            {"class": "AgglomerativeClustering", "params": {"memory": str(tmp / "cache")}},
            "memory",
        ),
        (
            "memory under model.params",
            {"model": {"class": "OPTICS", "params": {"memory": str(tmp / "cache")}}},
            "memory",
        ),
        (
            "joblib expression",
            {"class": "GridSearchCV", "param_grid": {"C": [1]}, "pre_dispatch": "9**9**9"},
            "pre_dispatch",
        ),
        ("vectorizer reading files", {"class": "CountVectorizer", "input": "filename"}, "input"),
        (
            "a file name deep in a value",
            {"class_weight": {"x": {"model_file": str(secret)}}},
            "model_file",
        ),
    ]


@pytest.mark.parametrize("index", range(11))
async def test_put_cannot_name_server_files_at_any_depth(jp_fetch, store_dir, tmp_path, index):
    case, body, key = attacks(tmp_path)[index]
    await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})  # the model is created
    before = stored(store_dir)
    reply = await call(
        jp_fetch, "mlhandler", NAME, method="PUT", params={"_model": ""},
        body=json.dumps(body), headers=JSON,
    )  # fmt: skip
    assert_clean_error(reply, 403, key, "server config")
    assert stored(store_dir) == before, case
    # a retrain afterwards writes nothing outside the store and reads no secret
    reply = await call(jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "retrain"})
    assert reply.code == 200, reply.text
    assert not (tmp_path / "evil.joblib").exists()
    assert not (tmp_path / "made.db").exists()
    assert not (tmp_path / "cache").exists()
    cache = await call(jp_fetch, "mlhandler", NAME, params={"_cache": ""})
    assert b"s3cret" not in cache.body


async def test_put_to_a_new_name_cannot_name_server_files(jp_fetch, store_dir, tmp_path):
    reply = await call(
        jp_fetch, "mlhandler", "fresh", method="PUT", params={"_model": ""},
        body=json.dumps({"model": {"class": "LogisticRegression", "data": "/etc/passwd"}}),
        headers=JSON,
    )  # fmt: skip
    assert_clean_error(reply, 403, "data")
    assert not (store_dir / "fresh").exists()


@pytest.mark.parametrize(
    "params, key",
    [
        ({"_model": "", "class": "AgglomerativeClustering", "memory": "/tmp/x"}, "memory"),
        ({"_model": "", "template": "page.html"}, "template"),
        ({"_model": "", "data": "titanic.csv"}, "data"),
        ({"_model": "", "path": "/tmp/model.joblib"}, "path"),
    ],
)
async def test_put_query_cannot_name_server_files(jp_fetch, store_dir, params, key):
    await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})
    before = stored(store_dir)
    reply = await call(jp_fetch, "mlhandler", NAME, method="PUT", params=params)
    assert_clean_error(reply, 403, key)
    assert stored(store_dir) == before


@pytest.mark.parametrize("key", ["func", "self", "changes", "class_", "name"])
async def test_put_keys_that_are_python_argument_names_are_plain_names(jp_fetch, store_dir, key):
    """A body key that collides with a Python argument name was a 500 (TypeError)."""
    await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})
    before = stored(store_dir)
    value = "LogisticRegression" if key == "class_" else "x"
    reply = await call(
        jp_fetch, "mlhandler", NAME, method="PUT", params={"_model": ""},
        body=json.dumps({key: value}), headers=JSON,
    )  # fmt: skip
    if key == "class_":  # Python's spelling of class: accepted
        assert reply.code == 200, reply.text
        return
    assert_clean_error(reply, 400, key, "LogisticRegression")
    assert stored(store_dir) == before


def test_the_allow_list_keeps_what_a_request_may_set():
    changes = {
        "class": "RandomForestClassifier",
        "n_estimators": 10,
        "model": {"target_col": "Survived", "params": {"max_depth": 3}},
        "exclude": ["Name"],
        "drop_duplicates": False,
        "fit_path": True,
        "class_weight": {"0": 1, "1": 2},
    }
    assert from_request(changes) == changes


def test_python_callers_may_still_set_server_options(tmp_path, titanic_csv):
    """Only requests are refused: the server config and Python name files on purpose."""
    m = MLModel("py", data=str(titanic_csv), store=tmp_path / "store", class_="LogisticRegression",
                target_col="Survived", path=str(tmp_path / "copy.joblib"))  # fmt: skip
    assert (tmp_path / "copy.joblib").is_file()
    m.configure({"exclude": ["Name"]})
    assert m.options["exclude"] == ["Name"]


@pytest.mark.parametrize("name", ["titanic%0A", "titanic%0D", "titanic%20", "%0Atitanic"])
async def test_look_alike_names_are_refused(jp_fetch, store_dir, name):
    """``titanic%0A`` created a second model that lists like the first."""
    assert (await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})).code == 200
    reply = await call(
        jp_fetch, "mlhandler", unquote(name), method="PUT",
        params={"_model": "", "class": "LogisticRegression"},
    )  # fmt: skip
    assert_clean_error(reply, 400, "model name")
    assert sorted(p.name for p in store_dir.iterdir()) == [NAME]


@pytest.mark.parametrize("value", ["__class__", "estimator.__init__", "_private", "named_steps.x"])
async def test_attribute_paths_name_only_public_attributes(jp_fetch, store_dir, value):
    await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})
    before = stored(store_dir)
    reply = await call(
        jp_fetch, "mlhandler", NAME, method="PUT",
        params={"_model": "", "class": "SelectFromModel", "importance_getter": value},
    )  # fmt: skip
    assert_clean_error(reply, 403, "importance_getter", "public attribute")
    assert stored(store_dir) == before


async def test_an_aborted_upload_closes_its_temp_file_at_once(
    jp_fetch, jp_serverapp, jp_http_port, jp_base_url
):
    """30 aborted 12 MB uploads left up to 15 deleted temp files open (189 MB) until the
    garbage collector found their handlers (issue 25): the body is closed with the connection."""
    import asyncio
    import contextlib
    import gc
    import os
    import tempfile

    from rest_helpers import wait_until_async

    def spooled() -> int:  # the request bodies on disk (past SPOOL_BYTES), open in the server
        links = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                links.append(os.readlink(f"/proc/self/fd/{fd}"))
        return sum(link.startswith(tempfile.gettempdir()) for link in links)

    before = spooled()
    token = jp_serverapp.identity_provider.token
    gc.disable()  # (a collection would close them too, whenever it ran)
    try:
        for _ in range(3):
            _, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
            writer.write(
                f"POST {jp_base_url}mlhandler/{NAME}?_action=predict HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nAuthorization: token {token}\r\n"
                f"Content-Type: text/csv\r\nContent-Length: {12 * 2**20}\r\n\r\n".encode()
            )
            writer.write(b"Age\n" + b"1\n" * (5 * 2**20))  # 10 MB of the 12: spooled to disk
            await writer.drain()
            await wait_until_async(lambda: spooled() > before, what="the body spooled to disk")
            writer.close()  # the client gives up
            await wait_until_async(lambda: spooled() == before, what="its temp file closed")
    finally:
        gc.enable()
    assert (await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})).code == 200
