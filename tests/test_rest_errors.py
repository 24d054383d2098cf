"""Bad requests: each answers a JSON error naming the problem and changes nothing stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER
from jupyter_server.auth import Authorizer
from rest_helpers import (
    TITANIC,
    Reply,
    assert_clean_error,
    call,
    multipart,
    settled,
    titanic_server_config,
)

from mlwidget import MLModel

NAME = "titanic"
LIMIT = 2 * 1024 * 1024
JSON = {"Content-Type": "application/json"}
FEATURES = pd.read_csv(TITANIC).drop(columns=["Survived"]).head(20)
PASSENGER = {k: str(v) for k, v in GUIDE_PASSENGER.items()}


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv, max_body_size=LIMIT)


def snapshot(store_dir: Path) -> dict[str, Any]:
    m = MLModel.open(NAME, store=store_dir)
    info = m.info()
    return {
        "fitted": info["fitted"],
        "model": info["model"],
        "params": info["params"],
        "options": info["options"],
        "rows": info["rows"],
        "data": m.data(),
        "model_file": m.model_bytes(),
    }


def records(rows: list[dict] | pd.DataFrame) -> str:
    if isinstance(rows, pd.DataFrame):
        return rows.to_json(orient="records")
    return json.dumps(rows)


BAD_CSV_UPLOAD = multipart([("file", "broken.xlsx", b"this is not a spreadsheet")])

# id, request (method, params, body, headers), status, words the error must contain
CASES = [
    ("malformed JSON", ("POST", {"_action": "predict"}, '[{"Sex": "male",', JSON), 400, ["JSON"]),
    (
        "unknown _action",
        ("POST", {"_action": "explode"}, records(FEATURES), JSON),
        400,
        ["explode"],
    ),
    (
        "unknown class",
        ("PUT", {"_model": "", "class": "NoSuchClassifier"}, None, None),
        400,
        ["NoSuchClassifier"],
    ),
    ("unknown parameter", ("PUT", {"_model": "", "nonsense": "1"}, None, None), 400, ["nonsense"]),
    (
        "invalid parameter value",
        ("PUT", {"_model": "", "C": "-1"}, None, None),
        400,
        ["'C' parameter", "-1"],
    ),
    (
        "invalid option value",
        ("PUT", {"_model": "", "dropna": "maybe"}, None, None),
        400,
        ["dropna"],
    ),
    (
        "missing feature column",
        ("GET", {"Sex": "male", "Age": "22"}, None, None),
        400,
        ["Pclass", "Embarked"],
    ),
    (
        "missing feature column in a body",
        ("POST", {}, records(FEATURES.drop(columns=["Fare"])), JSON),
        400,
        ["Fare"],
    ),
    ("uncastable value", ("GET", {**PASSENGER, "Age": "abc"}, None, None), 400, ["Age", "abc"]),
    (
        "ragged repeated keys",
        ("GET", [*PASSENGER.items(), ("Sex", "female")], None, None),
        400,
        ["Sex"],
    ),
    (
        "score without the target column",
        ("POST", {"_action": "score"}, records(FEATURES), JSON),
        400,
        ["Survived"],
    ),
    (
        "append with mismatched columns",
        ("POST", {"_action": "append"}, records([{"Sex": "male", "Colour": "red"}]), JSON),
        400,
        ["Colour", "Survived"],
    ),
    (
        "retrain on an unknown target",
        ("POST", {"_action": "retrain", "target_col": "Nope"}, records(FEATURES), JSON),
        400,
        ["Nope"],
    ),
    ("predict without a body", ("POST", {"_action": "predict"}, None, None), 400, ["body"]),
    (
        "body in no known format",
        ("POST", {}, b"\x00\x01\x02\x03 binary junk \xff\xfe", {"Content-Type": "image/png"}),
        415,
        [],
    ),
    (
        "binary junk sent as a form (curl -d @file) is no retrain on the stored data",
        (
            "POST",
            {"_action": "retrain"},
            b"\x80\x04\x95junk\x00",
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        415,
        [],
    ),
    (
        "upload that cannot be parsed",
        ("POST", {}, BAD_CSV_UPLOAD[0], BAD_CSV_UPLOAD[1]),
        400,
        [],
    ),
    (
        "body over the limit",
        ("POST", {"_action": "append"}, b"x" * (LIMIT + 1), JSON),
        413,
        ["max_body_size"],
    ),
    (
        "no authentication",
        ("GET", {"_model": ""}, None, {"Authorization": ""}),
        403,
        ["token", "Authorization: token", "?token="],
    ),
    (
        "no authentication for a retrain",
        ("POST", {"_action": "retrain"}, None, {"Authorization": ""}),
        403,
        [],
    ),
    (
        "a class that is not an estimator",
        ("PUT", {"_model": "", "class": "os.system"}, None, None),
        400,
        ["os.system"],
    ),
    (
        "a file option over HTTP",
        ("PUT", {"_model": "", "template": "/etc/passwd"}, None, None),
        403,
        ["template"],
    ),
    (
        "training data path over HTTP",
        ("PUT", {"_model": "", "data": "/etc/passwd"}, None, None),
        403,
        ["data"],
    ),
    ("PUT body not JSON", ("PUT", {"_model": ""}, "class=SVC", None), 400, ["JSON"]),
    ("PUT body not an object", ("PUT", {"_model": ""}, "[1, 2]", None), 400, ["object"]),
    ("delete an unknown item", ("DELETE", {"_model": "", "_foo": ""}, None, None), 400, ["_foo"]),
    ("delete nothing", ("DELETE", {}, None, None), 400, ["_model", "_cache"]),
    ("unknown _format", ("GET", {"_cache": "", "_format": "pdf"}, None, None), 400, ["pdf"]),
]


@pytest.mark.parametrize(
    "request_, status, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_request(jp_fetch, store_dir, request_, status, words):
    method, params, body, headers = request_
    # the configured model is created in the background at start: a request waits for it
    assert (await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})).code == 200
    before = snapshot(store_dir)
    reply = await call(
        jp_fetch, "mlhandler", NAME, method=method, params=params, body=body, headers=headers
    )
    assert_clean_error(reply, status, *words)
    after = snapshot(store_dir)
    pd.testing.assert_frame_equal(before.pop("data"), after.pop("data"))
    assert before == after


async def test_unknown_model(jp_fetch, store_dir):
    reply = await call(jp_fetch, "mlhandler", "nosuch", params=PASSENGER)
    assert_clean_error(reply, 404, "nosuch")
    reply = await call(jp_fetch, "mlhandler", "..", params={"_model": ""})
    assert reply.code in (400, 404)
    # a failed PUT to a new name leaves nothing behind
    reply = await call(
        jp_fetch, "mlhandler", "newbie", method="PUT", params={"_model": "", "class": "Nope"}
    )
    assert_clean_error(reply, 400, "Nope")
    assert not (store_dir / "newbie").exists()
    reply = await call(jp_fetch, "mlhandler", "")
    assert [m["name"] for m in reply.json()["models"]] == [NAME]


async def test_bad_config_does_not_stop_the_server(jp_fetch, jp_serverapp, store_dir):
    """A configured model that cannot be created is reported; the others keep serving."""
    from mlwidget_server.registry import Registry

    app = jp_serverapp.web_app.settings["mlwidget"].registry
    assert isinstance(app, Registry)
    app.startup.pending["broken"] = app.executor.submit(
        app.create_configured, "broken", {"class": "NoSuchModel", "data": str(TITANIC)}, None
    )
    app.configured["broken"] = ({}, None)
    reply = await call(jp_fetch, "mlhandler", "broken", params={"_model": ""})
    assert_clean_error(reply, 404, "broken", "NoSuchModel", "server config")
    reply = await call(jp_fetch, "mlhandler", "")
    entries = {m["name"]: m for m in reply.json()["models"]}
    assert "NoSuchModel" in entries["broken"]["error"]
    assert (await call(jp_fetch, "mlhandler", NAME, params=PASSENGER)).json() == [0]


async def test_xsrf_required_for_cookie_requests(jp_fetch, jp_base_url):
    """A browser-style request (login cookie, no token, no XSRF header) may not write."""
    page = await call(jp_fetch, "mlhandler", NAME)
    cookies = "; ".join(
        c.split(";")[0] for c in page.headers.get_list("Set-Cookie") if not c.startswith("_xsrf")
    )
    assert cookies, page.headers.get_list("Set-Cookie")
    reply = await call(
        jp_fetch, "mlhandler", NAME, method="PUT", params={"_model": "", "class": "SVC"},
        headers={"Authorization": "", "Cookie": cookies},
    )  # fmt: skip
    assert_clean_error(reply, 403)


async def test_chunked_body_over_the_limit(jp_fetch, store_dir):
    """Without a Content-Length the body is counted as it arrives and dropped past the limit."""
    assert (await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})).code == 200
    rows = MLModel.open(NAME, store=store_dir).info()["rows"]

    async def produce(write):
        for _ in range(3):
            await write(b"x" * (LIMIT // 2 + 1))

    response = await jp_fetch(
        "mlhandler", NAME, method="POST", params={"_action": "append"},
        headers={"Content-Type": "text/csv"}, body_producer=produce, raise_error=False,
    )  # fmt: skip
    assert "Content-Length" not in response.request.headers
    reply = Reply(response.code, response.headers, response.body)
    assert_clean_error(reply, 413, "max_body_size")
    assert MLModel.open(NAME, store=store_dir).info()["rows"] == rows


async def test_page_without_login_redirects_to_login(jp_fetch, jp_base_url):
    reply = await call(
        jp_fetch, "mlhandler", NAME, headers={"Authorization": "", "Accept": "text/html"},
        follow_redirects=False,
    )  # fmt: skip
    assert reply.code == 302
    assert reply.headers["Location"].startswith(f"{jp_base_url}login?next=")
    # API requests are refused with JSON, never redirected
    reply = await call(
        jp_fetch, "mlhandler", NAME, params=PASSENGER,
        headers={"Authorization": "", "Accept": "text/html"}, follow_redirects=False,
    )  # fmt: skip
    assert_clean_error(reply, 403)


class ReadOnlyAuthorizer(Authorizer):
    """Lets every authenticated user read, nobody write."""

    def is_authorized(self, handler, user, action, resource):
        return action == "read"


class TestAuthorization:
    @pytest.fixture
    def jp_server_config(self, store_dir: Path, titanic_csv: Path) -> dict:
        return {
            "ServerApp": {
                "jpserver_extensions": {"mlwidget_server": True},
                "authorizer_class": ReadOnlyAuthorizer,
            },
            "MLWidgetApp": {
                "store_dir": str(store_dir),
                "models": {NAME: {"data": str(titanic_csv), **GUIDE_OPTIONS}},
            },
        }

    async def test_reads_are_allowed_and_writes_are_not(self, jp_fetch, store_dir):
        assert (await call(jp_fetch, "mlhandler", NAME, params=PASSENGER)).json() == [0]
        reply = await call(jp_fetch, "mlhandler", NAME, method="POST", body=records(FEATURES))
        assert reply.code == 200 and len(reply.json()) == len(FEATURES)
        reply = await call(
            jp_fetch, "mlhandler", NAME, method="POST", params={"_action": "score"},
            body=pd.read_csv(TITANIC).to_json(orient="records"),
        )  # fmt: skip
        assert reply.code == 200
        assert (await call(jp_fetch, "mlhandler", "")).code == 200
        for flag in ("_model", "_params", "_cache", "_openapi"):
            assert (await call(jp_fetch, "mlhandler", NAME, params={flag: ""})).code == 200
        before = snapshot(store_dir)
        for method, params, body in [
            ("PUT", {"_model": "", "class": "SVC"}, None),
            ("DELETE", {"_model": ""}, None),
            ("POST", {"_action": "retrain"}, None),
            ("POST", {"_action": "append"}, records(FEATURES)),
            # the model file is a pickle: fetching it is a write action (issue 6)
            ("GET", {"_download": ""}, None),
            ("GET", {"_openapi": "", "_download": ""}, None),
        ]:
            reply = await call(jp_fetch, "mlhandler", NAME, method=method, params=params, body=body)
            assert_clean_error(reply, 403, "write", "mlwidget")
        # the listing's preview reads an upload: a write action too
        reply = await call(
            jp_fetch, "mlhandler", "", method="POST", params={"_action": "preview"},
            body=TITANIC.read_bytes(), headers={"Content-Type": "text/csv"},
        )  # fmt: skip
        assert_clean_error(reply, 403, "write", "mlwidget")
        after = snapshot(store_dir)
        pd.testing.assert_frame_equal(before.pop("data"), after.pop("data"))
        assert before == after


async def test_default_page_cannot_be_framed_or_load_foreign_code(jp_fetch):
    reply = await call(jp_fetch, "mlhandler", NAME)
    assert reply.code == 200 and reply.headers["Content-Type"].startswith("text/html")
    policy = reply.headers["Content-Security-Policy"]
    for rule in ("frame-ancestors 'self'", "default-src 'none'", "connect-src 'self'"):
        assert rule in policy, policy
    assert "http://" not in reply.text and "https://" not in reply.text  # no CDN, no links out


class Unpickled:
    """Unpickling this creates a file: the proof that something unpickled an upload."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


async def test_uploaded_pickles_are_never_loaded(jp_fetch, store_dir, tmp_path):
    import io
    import pickle

    import joblib

    marker = tmp_path / "unpickled"
    evil = Unpickled()
    evil.marker = str(marker)
    joblib_file = io.BytesIO()
    joblib.dump(evil, joblib_file)
    assert (await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})).code == 200
    before = snapshot(store_dir)
    for content in (pickle.dumps(evil), joblib_file.getvalue()):
        for action in ("predict", "retrain", "append", "score"):
            bodies = [
                (content, {"Content-Type": "application/octet-stream"}),
                (content, {"Content-Type": "application/python-pickle"}),
                (content, {}),
                *(multipart([("file", name, content)]) for name in ("m.pkl", "m.joblib")),
            ]
            for body, headers in bodies:
                reply = await call(
                    jp_fetch, "mlhandler", NAME, method="POST", params={"_action": action},
                    body=body, headers=headers,
                )  # fmt: skip
                assert reply.code in (400, 415), (action, headers, reply.code, reply.text)
                assert_clean_error(reply, reply.code)
    assert not marker.exists()
    after = snapshot(store_dir)
    pd.testing.assert_frame_equal(before.pop("data"), after.pop("data"))
    assert before == after


ROUTE_YAML = """
url:
  mlhandler/tutorial:
    pattern: /$YAMLURL/ml
    handler: MLHandler
    kwargs:
      data: $YAMLPATH/titanic.csv
      model: {class: LogisticRegression, target_col: Survived, exclude: [Name, Ticket, Cabin]}
"""
NO_AUTH = [{"Authorization": ""}, {"Authorization": "token wrong"}]
QUERIES = [
    {},
    PASSENGER,
    {"_model": ""},
    {"_params": ""},
    {"_cache": ""},
    {"_cache": "", "_format": "csv"},
    {"_download": ""},
    {"_openapi": ""},
    {"_action": "retrain"},
    {"_action": "append"},
    {"delete": "model"},
    {"token": "wrong"},
]


class TestEveryRouteNeedsAuthentication:
    @pytest.fixture
    def jp_server_config(self, store_dir: Path, titanic_csv: Path, jp_root_dir: Path) -> dict:
        app = jp_root_dir / "app"
        app.mkdir()
        (app / "titanic.csv").write_bytes(titanic_csv.read_bytes())
        (app / "gramex.yaml").write_text(ROUTE_YAML)
        return {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {
                "store_dir": str(store_dir),
                "config_yaml": str(app / "gramex.yaml"),
                "models": {NAME: {"data": str(titanic_csv), **GUIDE_OPTIONS}},
            },
        }

    async def test_every_route_and_verb_refuses_unauthenticated_requests(self, jp_fetch, store_dir):
        routes = [("mlhandler", ""), ("mlhandler", NAME), ("mlhandler", "mlhandler-tutorial")]
        routes.append(("app", "ml"))  # a YAML model at its own pattern
        for route in routes:  # the models exist and answer an authenticated request
            assert (await call(jp_fetch, *route, params={"_model": ""})).code == 200, route
        await settled(jp_fetch)  # the start-up fits' crossval jobs have stored their scores
        before = snapshot(store_dir)
        checked = 0
        for route in routes:
            for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"):
                for params in QUERIES:
                    for headers in NO_AUTH:
                        body = records(FEATURES) if method in ("POST", "PUT", "PATCH") else None
                        reply = await call(
                            jp_fetch, *route, method=method, params=params, body=body,
                            headers=headers, follow_redirects=False,
                        )  # fmt: skip
                        where = (route, method, params, headers)
                        assert reply.code == 403, (where, reply.code, reply.text[:300])
                        if method != "HEAD":
                            assert_clean_error(reply, 403)
                        for secret in ("Survived", "Braund", "LogisticRegression", "openapi"):
                            assert secret not in reply.text, (where, reply.text[:300])
                        checked += 1
        assert checked == len(routes) * 6 * len(QUERIES) * len(NO_AUTH)
        after = snapshot(store_dir)
        pd.testing.assert_frame_equal(before.pop("data"), after.pop("data"))
        assert before == after
