"""Every operation the OpenAPI document lists has a role (issue 28): a table names the least
role of each, the document is walked so that a new operation cannot slip in without one, and a
real server refuses each operation to every key below its role (403, saying which role it
needs) while leaving the store exactly as it was. (tests/test_keys.py runs the table's
allowed side: a key with the role gets the API's own answer.)"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER
from rest_helpers import assert_clean_error, call, titanic_server_config

from mlwidget import MLModel, access
from mlwidget.keys import KeyRing

PASSENGER = {k: str(v) for k, v in GUIDE_PASSENGER.items()}

# (method, what the request names) -> the least role that may send it. "rows": a prediction
# by its feature parameters; ("post", NAME): ?_action=NAME; ("delete", "delete=model"): the
# ?delete= form. The list route and V2 have their own keys.
LEAST: dict[tuple[str, str], str] = {
    ("get", "rows"): "viewer",
    ("get", "_model"): "viewer",
    ("get", "_params"): "viewer",
    ("get", "_openapi"): "viewer",
    ("get", "_jobs"): "trainer",
    ("get", "_job"): "trainer",
    ("get", "_versions"): "trainer",
    ("get", "_log"): "trainer",
    ("get", "_monitor"): "trainer",
    ("get", "_feedback"): "trainer",
    ("get", "_download"): "owner",
    ("get", "_cache"): "owner",
    ("get", "_keys"): "owner",
    ("get", "explain"): "viewer",
    ("post", "predict"): "viewer",
    ("post", "predict_proba"): "viewer",
    ("post", "explain"): "viewer",
    ("post", "score"): "trainer",
    ("post", "retrain"): "trainer",
    ("post", "train"): "trainer",
    ("post", "append"): "trainer",
    ("post", "rollback"): "trainer",
    ("post", "search"): "trainer",
    ("post", "importance"): "trainer",  # fits a copy of the model on the stored rows
    ("post", "share"): "owner",
    ("post", "feedback"): "viewer",  # on the predictions answered to it (docs/monitoring.md)
    ("post", "replay"): "trainer",  # a candidate version on the logged inputs
    ("put", "_model"): "trainer",
    ("put", "_create"): "trainer",
    ("delete", "_job"): "trainer",
    ("delete", "_key"): "owner",
    ("delete", "_log"): "trainer",
    ("delete", "_feedback"): "trainer",
    ("delete", "_model"): "owner",
    ("delete", "_cache"): "owner",
    ("delete", "delete=model"): "owner",
    ("delete", "delete=cache"): "owner",
    ("delete", "delete=all"): "owner",  # the whole model (mlwidget/removal.py)
    ("v2", "metadata"): "viewer",
    ("v2", "ready"): "viewer",
    ("v2", "infer"): "viewer",
    ("list", "get"): "viewer",  # any role on any model: the listing shows the ones it reaches
    ("list", "preview"): "trainer",  # a trainer somewhere: a preview reads an upload
}
# parameters that shape an answer rather than name an operation
MODIFIERS = {"_format", "version", "_proba", "_metric", "_wait", "n_iter", "cv", "_class"}
MODIFIERS |= {"target_col", "role", "expires", "label", "rate", "origins", "class"}


def operations(document: dict[str, Any], name: str) -> list[tuple[str, str]]:
    """The operations the document lists, as LEAST's keys."""
    components = document["components"]

    def resolve(param: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in param:
            kind, key = param["$ref"].split("/")[-2:]
            return components[kind][key]
        return param

    found: list[tuple[str, str]] = []
    paths = document["paths"]
    for method, op in paths[f"/mlhandler/{name}"].items():
        params = [resolve(p) for p in op.get("parameters", [])]
        for param in params:
            pname, enum = param["name"], param.get("schema", {}).get("enum")
            if method in ("get", "post") and pname == "_action":  # GET: ?_action=explain
                found += [(method, action) for action in enum]
            elif method == "delete" and pname == "delete":
                found += [("delete", f"delete={item}") for item in enum]
            elif pname.startswith("_") and pname not in MODIFIERS:
                found.append((method, pname))
            elif method == "get" and param.get("in") == "query" and pname not in MODIFIERS:
                found.append(("get", "rows"))  # a feature: a prediction by query
    for suffix, which in (("", "metadata"), ("/ready", "ready"), ("/infer", "infer")):
        assert f"/mlhandler/v2/models/{name}{suffix}" in paths
        found.append(("v2", which))
    listing = paths["/mlhandler/"]
    found.append(("list", "get"))
    for param in (resolve(p) for p in listing["post"]["parameters"]):
        if param["name"] == "_action":
            found += [("list", action) for action in param["schema"]["enum"]]
    return sorted(set(found))


def needed(op: tuple[str, str]) -> str:
    """What mlwidget.access says the operation needs (the server asks it the same way)."""
    method, what = op
    if method in ("v2", "list"):
        return LEAST[op]  # checked by their handlers, below
    if method == "post" or (method == "get" and not what.startswith("_") and what != "rows"):
        return access.needed(method.upper(), ["_action"], what)
    keys = ["delete"] if what.startswith("delete=") else ([] if what == "rows" else [what])
    return access.needed(method.upper(), keys)


def request(op: tuple[str, str]) -> tuple[str, tuple[str, ...], dict[str, str], str | None]:
    """A request for the operation: method, path below mlhandler/, query, body."""
    method, what = op
    csv = "Sex,Age,Survived\nmale,22,0\n"
    if method == "v2":
        suffix = {"metadata": (), "ready": ("ready",), "infer": ("infer",)}[what]
        body = '{"inputs": []}' if what == "infer" else None
        return ("POST" if body else "GET", ("v2", "models", "titanic", *suffix), {}, body)
    if method == "list":
        return (
            ("GET", ("",), {}, None) if what == "get" else ("POST", ("",), {"_action": what}, csv)
        )
    if method == "post":
        return "POST", ("titanic",), {"_action": what, "version": "1", "role": "viewer"}, csv
    if what == "rows":
        return "GET", ("titanic",), PASSENGER, None
    if method == "get" and not what.startswith("_"):
        return "GET", ("titanic",), {**PASSENGER, "_action": what}, None
    if what.startswith("delete="):
        return "DELETE", ("titanic",), {"delete": what.split("=", 1)[1]}, None
    value = {"_job": "0123456789abcdef", "_key": "0123456789ab"}.get(what, "")
    extra = {"C": "2"} if method == "put" else {}
    return method.upper(), ("titanic",), {what: value, **extra}, None


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    MLModel("hr-1", data=str(titanic_csv), store=store_dir, executor="thread", **GUIDE_OPTIONS)
    return titanic_server_config(store_dir, titanic_csv)


def stored(store_dir: Path) -> dict[str, str]:
    """Every file of the store (but the keys' own use counts) and its content's digest."""
    return {
        str(path.relative_to(store_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(store_dir.rglob("*"))
        if path.is_file() and path.name != ".keys.json" and ".lock" not in path.name
    }


async def test_every_documented_operation_has_its_role_and_is_refused_below_it(jp_fetch, store_dir):
    document = (await call(jp_fetch, "mlhandler", "titanic", params={"_openapi": ""})).json()
    ops = operations(document, "titanic")
    missing = [op for op in ops if op not in LEAST]
    assert not missing, f"operations in the OpenAPI document without a role in LEAST: {missing}"
    assert ("post", "retrain") in ops and ("get", "_download") in ops and ("v2", "infer") in ops
    for op in ops:
        assert needed(op) == LEAST[op], (op, needed(op), LEAST[op])

    ring = KeyRing(store_dir)
    below = {  # keys that hold less than each role on titanic
        "viewer": [ring.create("owner", "sales-*", label="elsewhere")[1]],
        "trainer": [ring.create("viewer", "titanic", label="viewer")[1]],
    }
    below["owner"] = [*below["trainer"], ring.create("trainer", "titanic", label="trainer")[1]]
    before = stored(store_dir)
    refused = 0
    for op in ops:
        least = LEAST[op]
        if op == ("list", "get"):
            continue  # every key holds a role somewhere: the listing shows what it reaches
        keys = below[least]
        method, path, params, body = request(op)
        for key in keys:
            headers = {"Authorization": f"Bearer {key}"}
            if body:
                headers["Content-Type"] = "application/json" if op[0] == "v2" else "text/csv"
            reply = await call(
                jp_fetch, "mlhandler", *path, method=method, params=params, body=body,
                headers=headers,
            )  # fmt: skip
            data = assert_clean_error(reply, 403, f"needs the {least} role")
            assert "Ask the model's owner" in data["error"], (op, data)
            refused += 1
    assert refused >= len(ops) - 1  # every operation but the listing was refused to someone
    assert stored(store_dir) == before  # nothing stored changed
