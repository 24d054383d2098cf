"""A real JupyterHub (issue 28): alice's single-user server runs mlwidget with the HubAuthorizer
(docs/sharing.md's jupyterhub_config.py); bob holds ``access:servers`` and the viewer scope on
alice's server (through the group analysts), carol nothing. Every request goes through
configurable-http-proxy under ``/user/alice/``: bob may predict and nothing else there (not
even Voila, JupyterLab or the contents API), carol nothing, alice everything; a 403 says why,
and the next request on the same connection is answered (no 503 "socket hang up").

One hub for the module (with its proxy and alice's server), stopped with everything it
started; the proxy comes from npm (.ci/setup-tests puts it in .ci/.node)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
import requests
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER, NOTEBOOKS, ROOT
from rest_helpers import free_port

pytestmark = pytest.mark.xdist_group("hub")

VENV_BIN = Path(sys.executable).parent
CHP = ROOT / ".ci" / ".node" / "node_modules" / ".bin" / "configurable-http-proxy"
PASSWORD = "correct horse"  # DummyAuthenticator's shared password
NAME = "titanic"
WAIT = 180.0  # seconds a step may take on a busy machine (a bound, never a measurement)

# The Hub of the test: loopback ports, dummy logins, local processes, a store per user...
HARNESS = """
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.pid_file = {tmp!r} + "/proxy.pid"
c.JupyterHub.db_url = "sqlite:///" + {tmp!r} + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {tmp!r} + "/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allowed_users = {{"alice", "bob", "carol"}}
c.JupyterHub.spawner_class = "simple"
c.JupyterHub.redirect_to_server = False  # a login goes to the Hub's home, spawning nothing
c.SimpleLocalProcessSpawner.home_dir_template = {tmp!r} + "/home/{{username}}"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.start_timeout = c.Spawner.http_timeout = 300
c.Spawner.environment = {{
    "MLWIDGET_STORE": lambda spawner: {tmp!r} + "/stores/" + spawner.user.name,
    "MLWIDGET_EXECUTOR": "thread",
}}
"""
# ... then docs/sharing.md's jupyterhub_config.py as it is there (the first Python block under
# its "## JupyterHub" heading), and the servers may run as root here
SHARING = (ROOT / "docs" / "sharing.md").read_text()
DOCS_CONFIG = re.findall(r"```python\n(.*?)```", SHARING.partition("\n## JupyterHub\n")[2], re.S)[0]
AS_ROOT = 'c.Spawner.args = [*c.Spawner.args, "--allow-root"]\n'

# a notebook whose code, if Voila ran it for bob, would leave a file in alice's home
NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code", "execution_count": None, "id": "ran", "metadata": {},
            "outputs": [], "source": "open('voila-ran.txt', 'w').write('ran')",
        }
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}  # fmt: skip


def wait_for(check: Any, what: str, within: float = WAIT, log: Path | None = None) -> Any:
    """Poll ``check()`` until it returns a true value (which is returned)."""
    deadline = time.monotonic() + within
    while True:
        try:
            found = check()
        except (requests.ConnectionError, requests.Timeout):
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-6000:] if log and log.exists() else ""
            raise AssertionError(f"{what} did not happen within {within:g} s\n{tail}")
        time.sleep(0.3)


def stop(procs: list[psutil.Process]) -> None:
    """Terminate, then kill, the processes that still run (only ones this module started)."""
    alive = []
    for proc in procs:
        try:
            proc.terminate()
            alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    _, left = psutil.wait_procs(alive, timeout=20)
    for proc in left:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=10)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A JupyterHub with its proxy on loopback ports; alice's server spawned with her model."""
    if not os.access(CHP, os.X_OK):
        pytest.fail(f"configurable-http-proxy is not installed at {CHP}: run bash .ci/setup-tests")
    from mlwidget import MLModel

    tmp = tmp_path_factory.mktemp("hub")
    for user in ("alice", "bob", "carol"):
        (tmp / "home" / user).mkdir(parents=True)
    store = tmp / "stores" / "alice"
    MLModel(NAME, data=str(NOTEBOOKS / "titanic.csv"), store=store, executor="thread",
            **GUIDE_OPTIONS)  # fmt: skip
    (tmp / "home" / "alice" / "x.ipynb").write_text(json.dumps(NOTEBOOK))
    (tmp / "home" / "alice" / "notes.txt").write_text("alice's notes")
    port = free_port()
    config = HARNESS.format(
        port=port, hub_port=free_port(), api_port=free_port(), chp=str(CHP), tmp=str(tmp),
        password=PASSWORD, singleuser=str(VENV_BIN / "jupyterhub-singleuser"),
    ) + DOCS_CONFIG + AS_ROOT  # fmt: skip
    (tmp / "jupyterhub_config.py").write_text(config)
    log = tmp / "hub.log"
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLWIDGET_STORE", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "jupyterhub"), "-f", str(tmp / "jupyterhub_config.py")],
            cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    hub_proc = psutil.Process(proc.pid)
    seen: dict[int, psutil.Process] = {}

    def remember() -> None:  # the proxy and the servers the hub started (to stop them all)
        try:
            for child in hub_proc.children(recursive=True):
                seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass

    url = f"http://127.0.0.1:{port}"
    try:

        def hub_up() -> bool:
            assert proc.poll() is None, f"the hub exited:\n{log.read_text(errors='replace')}"
            return requests.get(f"{url}/hub/api/", timeout=10).status_code == 200

        wait_for(hub_up, "the hub's API through the proxy", log=log)
        remember()
        tokens = {user: new_token(url, user) for user in ("alice", "bob", "carol")}
        # a token of bob's with nothing but the viewer scope on alice's server (an app's)
        tokens["bob-viewer"] = new_token(url, "bob", ["custom:mlwidget:viewer!server=alice/"])
        alice = {"Authorization": f"token {tokens['alice']}"}
        reply = requests.post(f"{url}/hub/api/users/alice/server", headers=alice, timeout=60)
        assert reply.status_code in (201, 202), reply.text

        def ready() -> bool:
            remember()
            assert proc.poll() is None, f"the hub exited:\n{log.read_text(errors='replace')}"
            got = requests.get(f"{url}/user/alice/mlhandler/", headers=alice, timeout=30)
            return got.status_code == 200 and got.headers.get("Content-Type", "").startswith(
                "application/json"
            )

        wait_for(ready, "alice's server (mlwidget's listing through the proxy)", log=log)
        remember()
        yield SimpleNamespace(url=url, tokens=tokens, tmp=tmp, store=store, log=log)
    finally:
        remember()
        proc.send_signal(signal.SIGTERM)  # the hub stops its proxy and alice's server
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stop(list(seen.values()))


def new_token(url: str, user: str, scopes: list[str] | None = None) -> str:
    """An API token of ``user``'s from the Hub's REST API (their password as credential)."""
    body: dict[str, Any] = {"auth": {"username": user, "password": PASSWORD}, "note": "test"}
    if scopes is not None:
        body["scopes"] = scopes
    reply = requests.post(f"{url}/hub/api/users/{user}/tokens", json=body, timeout=60)
    assert reply.status_code in (200, 201), reply.text
    return reply.json()["token"]


def api(hub: SimpleNamespace, who: str) -> requests.Session:
    """A session sending ``who``'s API token."""
    session = requests.Session()
    session.headers["Authorization"] = f"token {hub.tokens[who]}"
    return session


def model_url(hub: SimpleNamespace, *parts: str) -> str:
    return "/".join([hub.url, "user", "alice", "mlhandler", NAME, *parts])


def browser(hub: SimpleNamespace, user: str) -> requests.Session:
    """A browser-like session: ``user`` logs in at the Hub, then opens alice's model page
    (the Hub's OAuth, its consent form for another user's server, the page's _xsrf cookie)."""
    session = requests.Session()
    session.headers["Accept"] = "text/html"
    page = session.get(f"{hub.url}/hub/login", timeout=60)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    assert xsrf, page.text[:2000]
    reply = session.post(
        f"{hub.url}/hub/login",
        data={"username": user, "password": PASSWORD, "_xsrf": unescape(xsrf[1])},
        timeout=60,
    )
    assert reply.status_code == 200 and "jupyterhub-session-id" in session.cookies, reply.text[:500]
    reply = session.get(model_url(hub), timeout=60)
    form = re.search(r"<form[^>]*>(.*?)</form>", reply.text, re.S)
    if form and "oauth2/authorize" in reply.url:  # "Authorize access" to alice's server
        hidden = r'<input type="hidden" name="([^"]+)" value="([^"]*)"'
        data = [(name, unescape(value)) for name, value in re.findall(hidden, form[1])]
        assert ("scopes", "access:servers!server=alice/") in data, data
        reply = session.post(reply.url, data=data, timeout=60)  # (the form's action is "")
    session.last = reply  # type: ignore[attr-defined]
    return session


def xsrf_of(session: requests.Session) -> str:
    value = session.cookies.get("_xsrf", path="/user/alice/")
    assert value, session.cookies
    return value


def refusal(reply: requests.Response, *words: str) -> str:
    """A 403 whose message (JSON ``error`` or ``message``, or the HTML page) names ``words``."""
    assert reply.status_code == 403, (reply.request.method, reply.url, reply.status_code,
                                      reply.text[:500])  # fmt: skip
    if reply.headers.get("Content-Type", "").startswith("application/json"):
        data = reply.json()
        text = str(data.get("error") or data.get("message"))
    else:
        text = unescape(reply.text)
    for word in words:
        assert word.lower() in text.lower(), (word, text[:800])
    return text


PREDICT = {**GUIDE_PASSENGER}
ROWS = [GUIDE_PASSENGER, {**GUIDE_PASSENGER, "Sex": "female", "Pclass": 1}]
RETRAIN = {"_action": "retrain"}


# ---------------------------------------------------------------------------- bob: a viewer


def test_bob_predicts_with_a_token(hub):
    bob = api(hub, "bob")
    reply = bob.get(model_url(hub), params=PREDICT, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json() == [0]
    reply = bob.post(model_url(hub), json=ROWS, timeout=60)
    assert reply.status_code == 200 and len(reply.json()) == 2, reply.text
    assert bob.get(model_url(hub), params={"_model": ""}, timeout=60).status_code == 200
    v2 = f"{hub.url}/user/alice/mlhandler/v2/models/{NAME}/infer"
    inputs = [
        {
            "name": k,
            "shape": [1],
            "datatype": "BYTES" if isinstance(v, str) else "FP64",
            "data": [v],
        }
        for k, v in GUIDE_PASSENGER.items()
    ]
    reply = bob.post(v2, json={"inputs": inputs}, timeout=60)
    assert reply.status_code == 200, reply.text
    # a token with only the viewer scope (no access:servers) predicts too
    app = api(hub, "bob-viewer")
    reply = app.get(model_url(hub), params=PREDICT, timeout=60)
    assert reply.status_code == 200 and reply.json() == [0], reply.text


def test_bob_may_not_change_or_download_the_model(hub):
    bob = api(hub, "bob")
    before = sorted(p.name for p in (hub.store / NAME).iterdir())
    writes = [
        ("POST", RETRAIN, ROWS, "trainer"),
        ("PUT", {"_model": "", "class": "SVC"}, None, "trainer"),
        ("DELETE", {"_model": ""}, None, "owner"),
        ("GET", {"_download": ""}, None, "owner"),
        ("GET", {"_versions": ""}, None, "trainer"),
    ]
    for method, params, body, role in writes:
        reply = bob.request(method, model_url(hub), params=params, json=body, timeout=60)
        refusal(reply, f"needs the {role} role", "bob holds viewer")
        # the next request on the same connection is answered (the trial's 503 "socket hang up")
        assert bob.get(model_url(hub), params=PREDICT, timeout=60).status_code == 200
    assert sorted(p.name for p in (hub.store / NAME).iterdir()) == before
    app = api(hub, "bob-viewer")
    refusal(app.post(model_url(hub), params=RETRAIN, json=ROWS, timeout=60), "trainer role")


def test_bob_gets_nothing_else_on_alices_server(hub):
    bob = api(hub, "bob")
    base = f"{hub.url}/user/alice"
    for method, path, body in [
        ("GET", "api/contents", None),
        ("GET", "api/contents/notes.txt", None),
        ("GET", "api/kernels", None),
        ("POST", "api/kernels", {}),
        ("GET", "api/sessions", None),
        ("GET", "api/terminals", None),
        ("GET", "api/kernelspecs", None),
        ("GET", "api/config/notebook", None),
        ("GET", "api/me", None),
        ("GET", "files/notes.txt", None),
        ("GET", "lab", None),
        ("GET", "lab/api/settings", None),
        ("PUT", "lab/api/settings/@jupyterlab/apputils-extension:themes", {"raw": "{}"}),
        ("PUT", "lab/api/workspaces/bob", {"data": {}, "metadata": {"id": "bob"}}),
        ("GET", "voila/render/x.ipynb", None),
        ("GET", "nbconvert/html/x.ipynb", None),
    ]:
        reply = bob.request(method, f"{base}/{path}", json=body, timeout=120,
                            allow_redirects=False)  # fmt: skip
        refusal(reply, "bob may use only the mlwidget models", "alice alone")
        assert "alice's notes" not in reply.text
    assert not (hub.tmp / "home" / "alice" / "voila-ran.txt").exists()
    # the token with only the viewer scope: the same
    refusal(api(hub, "bob-viewer").get(f"{base}/api/contents", timeout=60), "alice alone")


def test_bob_in_a_browser_predicts_with_xsrf_and_is_told_why_not(hub):
    bob = browser(hub, "bob")
    page = bob.last  # type: ignore[attr-defined]
    assert page.status_code == 200 and page.url.startswith(model_url(hub)), page.url
    assert "text/html" in page.headers["Content-Type"]
    xsrf = {"X-XSRFToken": xsrf_of(bob), "Accept": "application/json"}
    for _ in range(3):  # early 403s, each followed by a request on the same connection
        reply = bob.post(model_url(hub), json=ROWS, headers={"Accept": "application/json"},
                         timeout=60)  # fmt: skip
        refusal(reply, "XSRF", "X-XSRFToken")
        reply = bob.post(model_url(hub), json=ROWS, headers=xsrf, timeout=60)
        assert reply.status_code == 200 and len(reply.json()) == 2, reply.text
        reply = bob.post(model_url(hub), params=RETRAIN, json=ROWS, headers=xsrf, timeout=60)
        refusal(reply, "needs the trainer role", "bob holds viewer")
        assert reply.headers.get("Connection", "").lower() == "close"
        reply = bob.get(model_url(hub), params=PREDICT, headers=xsrf, timeout=60)
        assert reply.status_code == 200 and reply.json() == [0], reply.text
    refusal(bob.get(f"{hub.url}/user/alice/lab", timeout=60, allow_redirects=False), "alice alone")
    reply = bob.put(f"{hub.url}/user/alice/lab/api/workspaces/bob", headers=xsrf, timeout=60,
                    json={"data": {}, "metadata": {"id": "bob"}})  # fmt: skip
    refusal(reply, "alice alone")


# ---------------------------------------------------------------------------- carol: nothing


def test_carol_gets_nothing(hub):
    carol = api(hub, "carol")
    reply = carol.get(model_url(hub), params=PREDICT, timeout=60)
    refusal(reply, "carol may not use alice's server")
    reply = carol.post(model_url(hub), json=ROWS, timeout=60)
    refusal(reply, "carol")
    for path in ("api/contents", "api/kernels", "lab", "voila/render/x.ipynb"):
        reply = carol.get(f"{hub.url}/user/alice/{path}", timeout=60, allow_redirects=False)
        assert reply.status_code == 403, (path, reply.status_code, reply.text[:300])
    # in a browser the Hub itself refuses her the way in to alice's server
    page = browser(hub, "carol").last  # type: ignore[attr-defined]
    assert page.status_code == 403, (page.url, page.status_code, page.text[:300])
    assert not (hub.tmp / "home" / "alice" / "voila-ran.txt").exists()


def test_a_request_without_credential_is_told_what_to_send(hub):
    reply = requests.get(model_url(hub), params=PREDICT, timeout=60)
    refusal(reply, "JupyterHub login or API token")
    reply = requests.post(model_url(hub), json=ROWS, timeout=60)
    refusal(reply, "JupyterHub login or API token")


# ---------------------------------------------------------------------------- alice: all


def test_alice_does_everything(hub):
    alice = api(hub, "alice")
    reply = alice.get(model_url(hub), params=PREDICT, timeout=60)
    assert reply.status_code == 200 and reply.json() == [0], reply.text
    reply = alice.post(model_url(hub), params=RETRAIN, timeout=300)
    assert reply.status_code == 200, reply.text
    reply = alice.get(model_url(hub), params={"_download": ""}, timeout=60)
    assert reply.status_code == 200 and reply.content, reply.text[:300]
    reply = alice.get(f"{hub.url}/user/alice/api/contents/notes.txt", timeout=60)
    assert reply.status_code == 200 and reply.json()["content"] == "alice's notes"
    assert alice.get(f"{hub.url}/user/alice/api/kernelspecs", timeout=60).status_code == 200
    assert alice.get(f"{hub.url}/user/alice/lab", timeout=120).status_code == 200
    # in a browser: her own server, no consent form, writes with XSRF
    session = browser(hub, "alice")
    assert session.last.status_code == 200  # type: ignore[attr-defined]
    xsrf = {"X-XSRFToken": xsrf_of(session), "Accept": "application/json"}
    reply = session.put(model_url(hub), params={"_model": "", "C": "0.5"}, headers=xsrf,
                        timeout=120)  # fmt: skip
    assert reply.status_code == 200, reply.text


# ---------------------------------------------------------------------------- without a hub


def hub_user(name: str, *scopes: str) -> Any:
    from jupyterhub.singleuser.extension import JupyterHubUser

    return JupyterHubUser({"name": name, "kind": "user", "scopes": list(scopes)})


def test_the_authorizer_answers_jupyters_handlers_by_scope(monkeypatch):
    """What Jupyter's handlers that ask the authorizer hear (when the guard is off, or for
    the ones a guard lets through): the owner everything, a colleague mlwidget alone."""
    from mlwidget_server.hub_auth import HubAuthorizer

    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.delenv("JUPYTERHUB_SERVER_NAME", raising=False)
    authorizer = HubAuthorizer()
    handler = SimpleNamespace()
    resources = ["contents", "kernels", "sessions", "terminals", "kernelspecs", "nbconvert",
                 "config", "events", "api", "files", "mlwidget"]  # fmt: skip
    cases = {
        "alice": (hub_user("alice", "access:servers!server=alice/"), set(resources)),
        "alice's app token": (hub_user("alice", "custom:mlwidget:owner!user=alice"), {"mlwidget"}),
        "bob": (
            hub_user("bob", "access:servers!server=alice/", "custom:mlwidget:viewer!server=alice/"),
            {"mlwidget"},
        ),
        "bob elsewhere": (hub_user("bob", "custom:mlwidget:owner!server=dave/"), set()),
        "a group filter": (hub_user("bob", "custom:mlwidget:viewer!group=alice"), set()),
        "carol": (hub_user("carol", "access:servers!server=alice/"), set()),
        "an admin": (hub_user("root", "access:servers", "admin:users", "admin:servers"), set()),
    }
    for who, (user, allowed) in cases.items():
        for resource in resources:
            for action in ("read", "write", "execute"):
                got = authorizer.is_authorized(handler, user, action, resource)
                assert got == (resource in allowed), (who, resource, action)


class TestGuardOnlyWhenConfigured:
    @pytest.fixture
    def jp_server_config(self, tmp_path: Path) -> dict:
        return {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {"store_dir": str(tmp_path / "store")},
        }

    def test_a_plain_server_keeps_its_identity_provider(self, jp_serverapp):
        from mlwidget_server.hub_auth import HubGuard

        assert not isinstance(jp_serverapp.web_app.settings["identity_provider"], HubGuard)


class TestGuardWithTheHubAuthorizer:
    @pytest.fixture
    def jp_server_config(self, tmp_path: Path) -> dict:
        return {
            "ServerApp": {
                "jpserver_extensions": {"mlwidget_server": True},
                "authorizer_class": "mlwidget_server.hub_auth.HubAuthorizer",
            },
            "MLWidgetApp": {"store_dir": str(tmp_path / "store")},
        }

    async def test_the_guard_is_on_and_the_token_owner_passes(self, jp_serverapp, jp_fetch):
        from mlwidget_server.hub_auth import HubGuard

        assert isinstance(jp_serverapp.web_app.settings["identity_provider"], HubGuard)
        # not on JupyterHub: the token's holder is the owner, everything answers
        assert (await jp_fetch("api", "contents")).code == 200
        assert (await jp_fetch("mlhandler", "")).code == 200
