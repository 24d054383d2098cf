"""Scoped keys on a plain Jupyter server (issue 28): a key opens the models it names with its
role, and nothing else of the server; keys are stored hashed, expire, are revoked at once, are
rate-limited, and every write records who made it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER
from rest_helpers import assert_clean_error, call, settled, titanic_server_config

from mlwidget import MLModel, access, keys
from mlwidget.errors import BadRequest, NotFound
from mlwidget.keys import KeyRing, parse_expiry

PASSENGER = {k: str(v) for k, v in GUIDE_PASSENGER.items()}
CSV = {"Content-Type": "text/csv"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# ---------------------------------------------------------------------------- from Python


def test_share_gives_a_key_shown_once_and_stored_hashed(store_dir, titanic_csv):
    model = MLModel(
        "titanic", data=str(titanic_csv), store=store_dir, executor="thread", **GUIDE_OPTIONS
    )
    shared = model.share("viewer", expires="30d", label="sales app")
    assert shared["key"].startswith("mlw_") and shared["role"] == "viewer"
    assert shared["models"] == "titanic" and shared["status"] == "active"
    (listed,) = model.shares()
    assert "key" not in listed and listed["label"] == "sales app"
    # the key's text is in no stored file: only its SHA-256
    for path in store_dir.rglob("*"):
        if path.is_file():
            assert shared["key"].encode() not in path.read_bytes(), path
    assert model.unshare("sales app")["status"] == "revoked"
    with pytest.raises(NotFound, match="No key"):
        model.unshare("nope")
    with pytest.raises(BadRequest, match="role of viewer, trainer, owner"):
        model.share("admin")
    with pytest.raises(BadRequest, match="expires as 30d"):
        model.share(expires="soon")
    with pytest.raises(BadRequest, match="in the future"):
        model.share(expires="2001-01-01")
    with pytest.raises(BadRequest, match="origins like"):
        model.share(origins=["https://app.example.com/path"])


def test_expiry_spellings():
    now = 1_000_000.0
    assert parse_expiry("30d", now) == now + 30 * 86400
    assert parse_expiry("12h", now) == now + 12 * 3600
    assert parse_expiry(None, now) is None and parse_expiry("never", now) is None


def test_the_role_each_request_needs():
    assert access.needed("GET", ["Sex", "Age"]) == "viewer"
    assert access.needed("GET", ["_model"]) == "viewer"
    assert access.needed("GET", ["_versions"]) == "trainer"
    assert access.needed("GET", ["_download"]) == "owner"
    assert access.needed("GET", ["_cache"]) == "owner"
    assert access.needed("POST", [], None) == "viewer"
    assert access.needed("POST", ["_action"], "predict_proba") == "viewer"
    assert access.needed("POST", ["_action"], "retrain") == "trainer"
    assert access.needed("POST", ["_action"], "score") == "trainer"
    assert access.needed("POST", ["_action"], "feedback") == "viewer"
    assert access.needed("GET", ["_monitor"]) == "trainer"
    assert access.needed("PUT", ["_model"]) == "trainer"
    assert access.needed("DELETE", ["_job"]) == "trainer"
    assert access.needed("DELETE", []) == "owner"


def test_the_command_line_creates_lists_and_revokes(store_dir):
    def keys(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "mlwidget_server.main", "keys", "--store", str(store_dir)]
        return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)

    made = keys("create", "--role", "trainer", "--models", "sales-*", "--label", "etl", "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["key"].startswith("mlw_") and created["models"] == "sales-*"
    listed = keys("list")
    assert "etl\ttrainer\tsales-*\tactive" in listed.stdout and created["key"] not in listed.stdout
    assert keys("revoke", "etl").stdout.strip() == f"revoked key 'etl' ({created['id']})"
    assert json.loads(keys("list", "--json").stdout)[0]["status"] == "revoked"
    bad = keys("create", "--role", "viewer", "--expires", "later")
    assert bad.returncode == 2 and "expires as 30d" in bad.stderr


# ------------------------------------------------------------------------------ over REST


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    MLModel("hr-1", data=str(titanic_csv), store=store_dir, executor="thread", **GUIDE_OPTIONS)
    return titanic_server_config(store_dir, titanic_csv)


def make_key(store_dir: Path, role: str, models: str = "titanic", **kwargs) -> str:
    return KeyRing(store_dir).create(role, models, **kwargs)[1]


# (method, path parts, params, body, the least role that may) for one model; a key with that
# role or more is let through (its answer is the API's own: 200, 202, 400, 409...), less: 403
REQUESTS = [
    ("GET", (), PASSENGER, None, "viewer"),
    ("GET", (), {"_model": ""}, None, "viewer"),
    ("GET", (), {"_params": ""}, None, "viewer"),
    ("GET", (), {"_openapi": ""}, None, "viewer"),
    ("POST", (), {"_action": "predict"}, "Sex,Age\nmale,22\n", "viewer"),
    ("POST", (), {"_action": "predict_proba"}, "Sex,Age\nmale,22\n", "viewer"),
    ("POST", (), {"_action": "feedback"}, '[{"id": "x-0", "flag": "wrong"}]', "viewer"),
    ("GET", (), {"_versions": ""}, None, "trainer"),
    ("GET", (), {"_monitor": ""}, None, "trainer"),
    ("GET", (), {"_jobs": ""}, None, "trainer"),
    ("POST", (), {"_action": "score"}, "Sex,Age,Survived\nmale,22,0\n", "trainer"),
    ("POST", (), {"_action": "retrain"}, None, "trainer"),
    ("PUT", (), {"_model": "", "C": "2"}, None, "trainer"),
    ("POST", (), {"_action": "rollback", "version": "1"}, None, "trainer"),
    ("GET", (), {"_download": ""}, None, "owner"),
    ("GET", (), {"_cache": ""}, None, "owner"),
    ("DELETE", (), {"_cache": ""}, None, "owner"),
]


@pytest.mark.parametrize("role", access.ROLES)
async def test_every_request_needs_its_role(jp_fetch, store_dir, role):
    key = make_key(store_dir, role)
    for method, _, params, body, least in REQUESTS:
        reply = await call(
            jp_fetch, "mlhandler", "titanic", method=method, params=params, body=body,
            headers={**bearer(key), **(CSV if body else {})},
        )  # fmt: skip
        allowed = access.rank(role) >= access.rank(least)
        if allowed:
            assert reply.code != 403, (role, method, params, reply.text)
        else:
            data = assert_clean_error(reply, 403, f"needs the {least} role", f"{role} on 'titanic'")
            assert "Ask the model's owner" in data["error"]
        await settled(jp_fetch)


async def test_a_key_opens_only_its_models_and_only_mlwidget(jp_fetch, store_dir):
    key = make_key(store_dir, "owner", "sales-*")
    reply = await call(jp_fetch, "mlhandler", "hr-1", params=PASSENGER, headers=bearer(key))
    assert_clean_error(reply, 403, "on 'sales-*'")
    viewer = make_key(store_dir, "viewer", "titanic")
    listing = (await call(jp_fetch, "mlhandler", "", headers=bearer(viewer))).json()
    assert [m["name"] for m in listing["models"]] == ["titanic"]  # not hr-1
    for parts in (("api", "contents"), ("api", "kernels"), ("api", "sessions"), ("api", "me")):
        reply = await call(jp_fetch, *parts, headers=bearer(viewer))
        assert reply.code == 403, (parts, reply.code, reply.text)
    reply = await call(jp_fetch, "mlhandler", "v2", "models", "titanic", headers=bearer(viewer))
    assert reply.code == 200, reply.text
    reply = await call(jp_fetch, "mlhandler", "v2", "models", "hr-1", headers=bearer(viewer))
    assert_clean_error(reply, 403, "viewer role")
    # the server's own token keeps working everywhere
    assert (await call(jp_fetch, "api", "contents")).code == 200


async def test_revoked_expired_and_unknown_keys_say_why(jp_fetch, store_dir):
    ring = KeyRing(store_dir)
    _, text = ring.create("viewer", "titanic", label="app")
    get = lambda key: call(jp_fetch, "mlhandler", "titanic", params=PASSENGER, headers=bearer(key))  # noqa: E731
    assert (await get(text)).code == 200
    ring.revoke("app")  # as `jupyter mlwidget keys revoke` in another process does
    assert_clean_error(await get(text), 403, "is revoked")
    short, text = ring.create("viewer", "titanic", expires=1)
    deadline = time.monotonic() + 30  # a bound: the key expires one second after it was made
    while ring.get(short.id).status() != "expired":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert_clean_error(await get(text), 403, "is expired")
    assert_clean_error(await get("mlw_0123456789ab_" + "x" * 32), 403, "not known")


async def test_a_key_past_its_rate_waits(jp_fetch, store_dir):
    key = make_key(store_dir, "viewer", rate=2)
    for _ in range(2):
        reply = await call(jp_fetch, "mlhandler", "titanic", params=PASSENGER, headers=bearer(key))
        assert reply.code == 200
    reply = await call(jp_fetch, "mlhandler", "titanic", params=PASSENGER, headers=bearer(key))
    assert_clean_error(reply, 429, "2 requests a minute")
    assert 1 <= int(reply.headers["Retry-After"]) <= 61


async def test_writes_record_who_made_them(jp_fetch, store_dir):
    ring = KeyRing(store_dir)
    key, text = ring.create("trainer", "titanic", label="nightly job")
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST", params={"_action": "retrain"},
        headers=bearer(text),
    )  # fmt: skip
    assert reply.code == 200, reply.text
    await settled(jp_fetch)
    newest = (await call(jp_fetch, "mlhandler", "titanic", params={"_versions": ""})).json()[0]
    assert newest["trained_by"] == f"key 'nightly job' ({key.id})"
    info = (await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})).json()
    assert info["changed_by"] == f"key 'nightly job' ({key.id})"
    await call(jp_fetch, "mlhandler", "titanic", method="PUT", params={"_model": "", "C": "3"})
    info = (await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})).json()
    assert info["changed_by"] == "owner"  # the server's token
    # counted by the server (this process: the server's ring writes what it gathered)
    assert [k for k in keys.ring(store_dir).list() if k.id == key.id][0].uses == 1
