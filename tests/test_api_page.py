"""The API page of a model (``?_openapi&_format=html``): the OpenAPI document for humans, with
snippets filled with the model's features and the server's URL; offline; its snippets run."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import GUIDE_OPTIONS
from rest_helpers import (
    TITANIC,
    call,
    jupyter_server,
    launch_chromium,
    needs_chromium,
    titanic_server_config,
)

from mlwidget import MLModel

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
API_PAGE = {"_openapi": "", "_format": "html"}


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv)


async def test_api_page_renders_the_document_with_the_model_s_own_snippets(jp_fetch):
    reply = await call(jp_fetch, "mlhandler", "titanic", params=API_PAGE, headers=HTML)
    assert reply.code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/html")
    csp = reply.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    page = html.unescape(reply.text)
    # the operations of the model's own document: methods, paths, query keys, answers
    for text in ("POST", "/mlhandler/titanic", "/mlhandler/v2/models/titanic/infer", "_action"):
        assert text in page, text
    from mlwidget.api import ACTIONS

    assert ", ".join(ACTIONS[:4]) in page  # the _action values, in their order
    assert "Sex" in page and "Embarked" in page  # the features are query keys
    # snippets: a scoped key (never the server's token), the server's own URL (the one the
    # request came to), the model's features; and where to get a key
    assert "Authorization: Bearer $MLWIDGET_KEY" in page and "$TOKEN" not in page
    assert 'os.environ["MLWIDGET_KEY"]' in page and "process.env.MLWIDGET_KEY" in page
    assert "Share panel of the model page" in page and ".share(role=" in page
    assert "#share-section" in page
    assert "/mlhandler/titanic?" in page and "Sex=" in page and "Pclass=" in page
    assert "http://127.0.0.1:" in page or "http://localhost:" in page
    assert "import tritonclient.http as httpclient" in page
    byte_inputs = next(line for line in page.splitlines() if line.startswith("BYTES = "))
    assert "'Sex'" in byte_inputs and "'Age'" not in byte_inputs  # categories, not numbers
    assert "import requests" in page
    # nothing is loaded from elsewhere: no external script, style or font
    assert "<script src" not in reply.text and "<link" not in page and "@import" not in page


async def test_openapi_json_stays_json_and_links_the_page(jp_fetch):
    reply = await call(jp_fetch, "mlhandler", "titanic", params={"_openapi": ""}, headers=HTML)
    assert reply.code == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    description = reply.json()["info"]["description"]
    assert "/mlhandler/titanic?_openapi&_format=html" in description


async def test_api_page_needs_a_login(jp_fetch):
    # a browser without the token goes to Jupyter's login page; an API client gets 403
    auth = {"Authorization": ""}
    reply = await call(
        jp_fetch, "mlhandler", "titanic", params=API_PAGE, headers={**HTML, **auth},
        follow_redirects=False,
    )  # fmt: skip
    assert reply.code == 302 and "/login" in reply.headers["Location"], reply.code
    reply = await call(jp_fetch, "mlhandler", "titanic", params=API_PAGE, headers=auth)
    assert reply.code == 403 and "token" in reply.json()["error"]


async def test_model_page_links_the_api_page(jp_fetch):
    reply = await call(jp_fetch, "mlhandler", "titanic", headers=HTML)
    assert reply.code == 200
    assert "titanic?_openapi&amp;_format=html" in reply.text


# ------------------------------------------------------------------ in a browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """The server, its token, and a viewer's key on the model (what the snippets send)."""
    tmp = tmp_path_factory.mktemp("apipage")
    model = MLModel("titanic", data=str(TITANIC), store=tmp / "store", **GUIDE_OPTIONS)
    key = model.share(role="viewer", label="api page snippets")["key"]
    with jupyter_server(tmp, tmp / "store") as (url, token):
        yield url, token, key


@needs_chromium
@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_api_page_is_offline_and_its_snippets_answer(server: tuple[str, str, str]) -> None:
    import requests
    from playwright.sync_api import expect, sync_playwright

    url, token, key = server
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    requested: list[str] = []

    def route(r):  # every request the page makes; anything off the server is refused
        requested.append(r.request.url)
        if r.request.url.startswith(origin + "/"):
            r.continue_()
        else:
            r.abort()

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            context = browser.new_context()
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
            page = context.new_page()
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.route("**/*", route)
            # from the model page, its link to the API page
            page.goto(f"{url}/mlhandler/titanic?token={token}")
            page.click("#link-api")
            expect(page.locator("h1")).to_have_text("titanic · API")
            expect(page.locator("#operations-section")).to_contain_text("/mlhandler/titanic")
            # one entry per operation of the model's own document
            doc = requests.get(
                f"{url}/mlhandler/titanic",
                params={"_openapi": ""},
                headers={"Authorization": f"token {token}"},
                timeout=60,
            ).json()
            count = sum(
                method in ("get", "post", "put", "delete")
                for item in doc["paths"].values()
                for method in item
            )
            assert count >= 8
            expect(page.locator(".operation")).to_have_count(count)
            expect(page.locator("#op-post-mlhandler-titanic")).to_contain_text("_action")
            snippets = {
                name: page.locator(f"#code-{name}").text_content()
                for name in (
                    "curl-get", "curl-csv", "python-requests", "javascript-fetch", "tritonclient"
                )
            }  # fmt: skip
            assert token not in page.content()  # the owner's token is never in a snippet
            # Send: the page makes the GET itself, with its own login, and shows the answer
            page.click("#snippet-curl-get button.send")
            expect(page.locator("#answer-curl-get")).to_contain_text("HTTP 200")
            expect(page.locator("#answer-curl-get")).to_contain_text("[0]")
            page.click("#snippet-curl-get button.copy")
            expect(page.locator("#snippet-curl-get .copied")).to_have_text("Copied.")
            copied = page.evaluate("navigator.clipboard.readText()")
            assert copied == snippets["curl-get"]
            assert not errors, errors
        finally:
            browser.close()
    assert requested and all(u.startswith(origin + "/") for u in requested), requested

    # the snippets run with a viewer's key, as a colleague or a program would
    env = {k: v for k, v in os.environ.items() if k != "TOKEN"}
    env["MLWIDGET_KEY"] = key
    # the guide's median passenger: a man in third class, who did not survive
    for name in ("curl-get", "curl-csv"):
        out = subprocess.run(
            ["bash", "-c", snippets[name]], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == [0], (name, out.stdout)
    out = subprocess.run(
        [sys.executable, "-c", snippets["python-requests"]],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[0]", "[0]"], out.stdout
    out = subprocess.run(
        [sys.executable, "-c", snippets["tritonclient"]],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[0]", out.stdout
    if shutil.which("node"):  # Node 18+ has fetch
        out = subprocess.run(
            ["node", "-e", snippets["javascript-fetch"]],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["[0]", "[0]"], out.stdout
