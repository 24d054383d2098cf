"""A web app on another origin calls a model (issue 28): chromium loads a page from another
loopback port, whose script sends a key; the preflight is answered for the origins the owner
allows (the server's list or the key's own), and refused for others; a browser's cookie never
authenticates a cross-origin request."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER
from rest_helpers import chromium_page, free_port, jupyter_server

from mlwidget import MLModel
from mlwidget.keys import KeyRing

pytestmark = pytest.mark.xdist_group("cors_browser")

PAGE = """<!doctype html><title>sales app</title><script>
async function ask(url, key, options) {
  try {
    const reply = await fetch(url, {headers: key ? {Authorization: "Bearer " + key} : {},
                                    ...(options || {})});
    return {status: reply.status, body: await reply.text()};
  } catch (e) { return {status: 0, body: String(e)}; }
}
</script>"""


@contextlib.contextmanager
def static_site(folder: Path) -> Iterator[str]:
    """``folder`` served on another loopback port: the web app's origin."""
    (folder / "index.html").write_text(PAGE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_on_another_origin_calls_a_model_with_its_key(tmp_path, store_dir, titanic_csv):
    MLModel("titanic", data=str(titanic_csv), store=store_dir, executor="thread", **GUIDE_OPTIONS)
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    with static_site(site_dir) as site:
        ring = KeyRing(store_dir)
        _, allowed = ring.create("viewer", "titanic", origins=[site], label="app")
        _, elsewhere = ring.create("viewer", "titanic", origins=["http://127.0.0.1:1"])
        with jupyter_server(tmp_path, store_dir) as (url, token):
            predict = f"{url}/mlhandler/titanic?{urllib.parse.urlencode(GUIDE_PASSENGER)}"
            with chromium_page(f"{site}/index.html") as (page, errors):
                ok = page.evaluate("([u, k]) => ask(u, k)", [predict, allowed])
                assert ok == {"status": 200, "body": "[0]"}, ok
                # a key that names other origins: the browser gets no answer it may read
                refused = page.evaluate("([u, k]) => ask(u, k)", [predict, elsewhere])
                assert refused["status"] == 0 and "Failed to fetch" in refused["body"], refused
                # the server's token in a header works from an allowed origin only; a cookie
                # (credentials: "include") never authenticates a cross-origin request
                cookie = page.evaluate("([u]) => ask(u, null, {credentials: 'include'})", [predict])
                assert cookie["status"] == 0, cookie
                assert errors == []
        # the preflight, as the browser sent it, seen from outside the browser
        with jupyter_server(tmp_path, store_dir, f"--MLWidgetApp.cors_origins={site}") as (
            url,
            token,
        ):
            preflight = urllib.request.Request(
                f"{url}/mlhandler/titanic", method="OPTIONS",
                headers={"Origin": site, "Access-Control-Request-Method": "POST",
                         "Access-Control-Request-Headers": "authorization, content-type"},
            )  # fmt: skip
            with urllib.request.urlopen(preflight, timeout=30) as reply:
                assert reply.status == 204
                assert reply.headers["Access-Control-Allow-Origin"] == site
                assert "authorization" in reply.headers["Access-Control-Allow-Headers"]
                assert reply.headers.get("Access-Control-Allow-Credentials") is None
            other = urllib.request.Request(
                f"{url}/mlhandler/titanic", method="OPTIONS",
                headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
            )  # fmt: skip
            with pytest.raises(urllib.error.HTTPError) as refused_preflight:
                urllib.request.urlopen(other, timeout=30)
            assert refused_preflight.value.code == 403
            assert "Access-Control-Allow-Origin" not in refused_preflight.value.headers
            # with the server's list, the owner's token (in a header) works from that origin
            with chromium_page(f"{site}/index.html") as (page, errors):
                owner = page.evaluate(
                    "([u, t]) => fetch(u, {headers: {Authorization: 'token ' + t}})"
                    ".then(r => r.status)",
                    [f"{url}/mlhandler/titanic?_model", token],
                )
                assert owner == 200
