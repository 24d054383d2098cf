"""Schemathesis against each model's OpenAPI document (``?_openapi``) on a real server.

A ``python -m jupyter_server`` subprocess serves a tmp store with two copies of the guide's
model: ``titanic`` gets the read operations only (GET, and POST with the read actions), the
throwaway ``scratch`` gets everything, destructive verbs included. Schemathesis (its CLI, as CI
would run it) generates requests from the document, valid and invalid, and checks that

- no answer is a 5xx,
- every status code, content type and JSON body is one the document declares,
- no body carries a traceback or a server path (a custom check, ``no_leak``),
- unknown methods are 405 with an ``Allow`` header.

PUT bodies follow the document's ``PutBody``: options and estimator parameters, flat or nested
under ``model`` and ``params``, ``class`` drawn from the allow-list; the keys the allow-list
refuses are documented 403s. tests/test_fuzz_estimators.py fuzzes the classes and their
parameters in depth.

Two of schemathesis's checks do not apply and are off: ``negative_data_rejection`` (a category
value the model has not seen is accepted and read as unseen, and flags such as ``?_model=x``
ignore their value) and ``positive_data_acceptance`` (a request may fit the document and still
be a documented 400, e.g. a table without the target column for ``_action=score``). A missing
token is a 403 (Jupyter's answer, and the contract's), not schemathesis's expected 401.

``MLWIDGET_FUZZ_EXAMPLES`` (default 60 per operation in the suite, for its time; 300 or more for
a deeper run) and ``MLWIDGET_FUZZ_SEED`` change the examples and the seed (a fixed one by
default, so that CI runs are reproducible).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER, ROOT
from rest_helpers import TITANIC, jupyter_server

from mlwidget import MLModel
from mlwidget.estimators import list_estimators

EXAMPLES = int(os.environ.get("MLWIDGET_FUZZ_EXAMPLES", "60"))
SEED = os.environ.get("MLWIDGET_FUZZ_SEED", "20240606")
READ_ACTIONS = ["predict", "predict_proba", "explain", "score"]
PASSENGER = {k: str(v) for k, v in GUIDE_PASSENGER.items()}

CONFIG = """
[cache]
enabled = false

[generation]
database = "none"
with-security-parameters = false

[checks]
negative_data_rejection.enabled = false
positive_data_acceptance.enabled = false
missing_required_header.expected-statuses = [403]
"""

HOOKS = '''
import json
import os

import schemathesis

FORBIDDEN = ["Traceback", 'File "', "site-packages", *json.loads(os.environ["FUZZ_FORBIDDEN"])]
TEXT_TYPES = ("json", "text", "html", "xml")


@schemathesis.check
def no_leak(ctx, response, case):
    """No body shows a traceback or a path of the server's files."""
    ctype = response.headers.get("content-type") or response.headers.get("Content-Type") or [""]
    ctype = ctype[0] if isinstance(ctype, list) else ctype
    if ctype and not any(t in ctype for t in TEXT_TYPES):
        return None  # model files, spreadsheets, parquet: binary
    text = response.content.decode("utf-8", "replace")
    for word in FORBIDDEN:
        if word in text:
            raise AssertionError(f"The body shows {word!r}: {text[:500]}")
    return None
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    store = tmp / "store"
    for name in ("titanic", "scratch"):
        MLModel(name, data=str(TITANIC), store=store, **GUIDE_OPTIONS)
    with jupyter_server(tmp, store) as (url, token):
        yield {"url": url, "token": token, "tmp": tmp, "store": store}


def auth(server: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"token {server['token']}"}


def document(server: dict[str, Any], name: str) -> dict[str, Any]:
    reply = requests.get(
        f"{server['url']}/mlhandler/{name}",
        params={"_openapi": ""},
        headers=auth(server),
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    return reply.json()


def schemathesis_run(server: dict[str, Any], doc: dict[str, Any], label: str, *options: str) -> str:
    """Run ``st run`` on ``doc`` against the server; fail with its report if it finds anything."""
    tmp: Path = server["tmp"]
    folder = tmp / f"st-{label}"
    folder.mkdir()
    (folder / "openapi.json").write_text(json.dumps(doc))
    (folder / "schemathesis.toml").write_text(CONFIG)
    (folder / "hooks.py").write_text(HOOKS)
    forbidden = sorted({str(tmp), str(tmp.resolve()), str(ROOT), sys.prefix, sys.base_prefix})
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(folder / "hooks.py"),
        "FUZZ_FORBIDDEN": json.dumps(forbidden),
        "NO_COLOR": "1",
        "COLUMNS": "120",
    }
    cmd = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", str(folder / "schemathesis.toml"),
        "run", str(folder / "openapi.json"),
        "--url", server["url"],
        "--header", f"Authorization: token {server['token']}",
        "--max-examples", str(EXAMPLES),
        "--seed", SEED,
        "--workers", "1",
        "--request-timeout", "60",
        *options,
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-8000:]
    assert " passed" in report, report[-4000:]
    return report


def read_actions_only(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with POST's ``_action`` limited to the read actions."""
    doc = copy.deepcopy(doc)
    for item in doc["paths"].values():
        for param in item.get("post", {}).get("parameters", []):
            if param["name"] == "_action":
                param["schema"]["enum"] = READ_ACTIONS
    return doc


def test_document_describes_the_model(server):
    import schemathesis

    doc = document(server, "titanic")
    schemathesis.openapi.from_dict(copy.deepcopy(doc)).validate()  # OpenAPI 3's own meta-schema
    assert doc["openapi"].startswith("3.")
    item = doc["paths"]["/mlhandler/titanic"]
    assert set(item) == {"get", "post", "put", "delete"}
    get = {p["name"]: p for p in item["get"]["parameters"]}
    # one query parameter per feature, typed by the training schema
    info = MLModel.open("titanic", store=server["store"]).info()
    for feature in info["schema"]:
        assert feature["name"] in get, feature
    assert get["Sex"]["schema"] == {"type": "string", "enum": ["female", "male"]}
    assert get["Pclass"]["schema"] == {"type": "integer", "enum": [1, 2, 3]}
    assert get["Age"]["schema"] == {"type": "number"}
    assert "Name" not in get and "Survived" not in get
    for flag in (
        "_openapi",
        "_model",
        "_params",
        "_cache",
        "_format",
        "_download",
        "_versions",
        "_job",
        "_jobs",
    ):
        assert flag in get, flag
    post = {p["name"]: p for p in item["post"]["parameters"]}
    assert post["_action"]["schema"]["enum"] == [
        "predict", "predict_proba", "explain", "importance", "score", "retrain", "train",
        "append", "rollback", "search", "share", "feedback", "replay",
    ]  # fmt: skip
    assert post["_wait"]["schema"]["enum"] == ["true", "false"]
    assert post["version"]["schema"]["type"] == "integer"
    assert "202" in item["post"]["responses"] and "429" in item["post"]["responses"]
    assert set(item["post"]["requestBody"]["content"]) >= {
        "application/json", "text/csv", "multipart/form-data",
    }  # fmt: skip
    put = {p["name"]: p for p in item["put"]["parameters"]}
    assert {"_model", "class", "target_col", "exclude", "C", "max_iter"} <= set(put)
    # a PUT body: the options and parameters, flat or nested under model and params
    schemas = doc["components"]["schemas"]
    body = item["put"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PutBody"}
    options = {"class", "target_col", "params", "include", "exclude", "cats", "nums"}
    options |= {"dropna", "deduplicate", "dopna", "drop_duplicates"}
    refused_keys = {"data", "path", "template", "memory", "input", "pre_dispatch"}
    options |= refused_keys  # documented as keys no value fits: `not: {}`, a 403
    for name in ("PutBody", "ModelOptions", "Params"):
        for key in refused_keys:
            assert schemas[name]["properties"][key]["not"] == {}, (name, key)
    assert set(schemas["PutBody"]["properties"]) == options | {"model"}
    assert schemas["PutBody"]["properties"]["model"] == {
        "$ref": "#/components/schemas/ModelOptions"
    }
    assert set(schemas["ModelOptions"]["properties"]) == options
    value = {"$ref": "#/components/schemas/ParamValue"}
    for name in ("PutBody", "ModelOptions", "Params"):
        assert schemas[name]["additionalProperties"] == value, name
    estimator_class = {"$ref": "#/components/schemas/EstimatorClass"}
    assert schemas["PutBody"]["properties"]["class"] == put["class"]["schema"] == estimator_class
    assert schemas["EstimatorClass"]["anyOf"][0]["enum"] == list_estimators()
    assert body["examples"]["nested"]["value"]["model"]["class"] == "LogisticRegression"
    assert body["examples"]["flat"]["value"]["class"] == "LogisticRegression"
    # what the allow-list refuses is a documented 403
    assert item["put"]["responses"]["403"] == {"$ref": "#/components/responses/Error403Put"}
    refused = doc["components"]["responses"]["Error403Put"]["description"]
    for key in ("data", "path", "template", "memory", "input", "pre_dispatch", "importance_getter"):
        assert f"`{key}`" in refused, key
        assert key not in put, key
    # the listing's preview, and the bulk results table
    preview = doc["paths"]["/mlhandler/"]["post"]
    assert {p["name"]: p["schema"].get("enum") for p in preview["parameters"]} == {
        "_action": ["preview"], "target_col": None, "filename": None, "name": None,
    }  # fmt: skip
    assert preview["responses"]["200"]["content"]["application/json"]["schema"] == {
        "oneOf": [
            {"$ref": "#/components/schemas/Preview"},
            {"$ref": "#/components/schemas/NameCheck"},
        ]
    }
    assert {"suggested_name", "name", "name_error"} <= set(schemas["Preview"]["properties"])
    assert post["_proba"]["schema"]["enum"] == ["true", "false"]
    assert "table" in post["_format"]["schema"]["enum"]
    assert "notes" in schemas["ModelInfo"]["properties"]
    delete = {p["name"] for p in item["delete"]["parameters"]}
    assert delete == {"_job", "_key", "_model", "_cache", "_log", "_feedback", "delete"}
    # every error shape, and the security scheme
    for method, codes in {
        "get": {"400", "403", "404", "409", "413"},
        "post": {"202", "400", "403", "404", "408", "409", "413", "415", "422", "429"},
        "put": {"400", "403", "404", "409", "413"},
        "delete": {"400", "403", "404", "409", "413"},
    }.items():
        assert set(item[method]["responses"]) == {"200"} | codes, method
    assert item["post"]["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Job"
    }
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and error["properties"]["error"]["type"] == "string"
    scheme = doc["components"]["securitySchemes"]["jupyterToken"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    assert doc["security"] == [{"jupyterToken": []}]
    # the listing links each model's document
    listing = requests.get(f"{server['url']}/mlhandler/", headers=auth(server), timeout=60)
    links = {m["name"]: m["openapi"] for m in listing.json()["models"]}
    assert links == {name: f"/mlhandler/{name}?_openapi" for name in ("scratch", "titanic")}
    assert requests.get(server["url"] + links["titanic"], headers=auth(server)).json() == doc
    # the document itself needs authentication
    assert requests.get(server["url"] + links["titanic"], timeout=60).status_code == 403


def test_document_of_a_model_without_data_or_fit():
    """A model created by a PUT (no data, nothing fitted) has a valid document too."""
    import schemathesis
    from mlwidget_server.openapi import openapi_document

    doc = openapi_document({"name": "empty", "model": None, "params": {}}, "/user/a%40b/")
    schemathesis.openapi.from_dict(copy.deepcopy(doc)).validate()
    assert doc["servers"] == [{"url": "/user/a%40b"}]
    get = [p["name"] for p in doc["paths"]["/mlhandler/empty"]["get"]["parameters"]]
    assert get == [
        "_job", "_jobs", "_openapi", "_versions", "_log", "_monitor", "_feedback", "since",
        "until", "limit",
        "_keys",
        "_download", "_model", "_params", "_cache", "_action", "_class", "_format", "version",
    ]  # fmt: skip
    assert "Not fitted" in doc["info"]["description"]


def test_fuzz_read_operations(server):
    before = MLModel.open("titanic", store=server["store"]).info()
    doc = read_actions_only(document(server, "titanic"))
    schemathesis_run(server, doc, "read", "--exclude-method", "PUT", "--exclude-method", "DELETE")
    after = MLModel.open("titanic", store=server["store"]).info()
    assert after["commit"] == before["commit"]  # read operations changed nothing
    reply = requests.get(
        f"{server['url']}/mlhandler/titanic", params=PASSENGER, headers=auth(server), timeout=60
    )
    assert reply.json() == [0]


def test_fuzz_every_operation_on_a_throwaway_model(server):
    schemathesis_run(server, document(server, "scratch"), "all")
    # the server still answers, and the other model is untouched
    reply = requests.get(
        f"{server['url']}/mlhandler/titanic", params=PASSENGER, headers=auth(server), timeout=60
    )
    assert reply.json() == [0]
    log = (server["tmp"] / "server.log").read_text(errors="replace")
    assert " 500 " not in log and "Internal error" not in log, log[-3000:]
