"""The API's vocabulary is defined once (mlwidget.api): the OpenAPI document, the handlers, the
widgets and the README agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT
from rest_helpers import call, titanic_server_config

from mlwidget import api, tables
from mlwidget.widgets import upload

README = (ROOT / "README.md").read_text()


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv)


def parameter(document: dict, path_item: dict, method: str, name: str) -> dict:
    for p in path_item[method].get("parameters", []) + path_item.get("parameters", []):
        if "$ref" in p:
            p = document["components"]["parameters"][p["$ref"].rsplit("/", 1)[-1]]
        if p["name"] == name:
            return p["schema"]
    raise KeyError(name)


async def test_the_openapi_document_uses_the_vocabulary(jp_fetch):
    document = (await call(jp_fetch, "mlhandler", "titanic", params={"_openapi": ""})).json()
    path_item = document["paths"]["/mlhandler/titanic"]
    assert parameter(document, path_item, "post", "_action")["enum"] == list(api.ACTIONS)
    formats = parameter(document, path_item, "get", "_format")
    assert set(formats["enum"]) >= set(api.PREDICT_FORMATS) | set(api.CACHE_FORMATS)
    assert parameter(document, path_item, "post", "_format")["enum"] == list(api.PREDICT_FORMATS)
    for key in api.TABLE_KEYS:
        assert parameter(document, path_item, "post", key)["enum"] == ["true", "false"]
    listing = document["paths"]["/mlhandler/"]
    assert parameter(document, listing, "post", "_action")["enum"] == list(api.LIST_ACTIONS)


@pytest.mark.parametrize("action", api.LIST_ACTIONS)
async def test_the_listing_knows_every_list_action(jp_fetch, action):
    reply = await call(jp_fetch, "mlhandler", "", method="POST", params={"_action": action})
    assert reply.code == 400 and "needs a table" in reply.json()["error"], reply.text


@pytest.mark.parametrize("action", api.ACTIONS)
async def test_the_handlers_know_every_action(jp_fetch, action):
    reply = await call(jp_fetch, "mlhandler", "titanic", method="POST", params={"_action": action})
    assert "Unknown _action" not in reply.text, reply.text


@pytest.mark.parametrize("fmt", [f for f in api.CACHE_FORMATS])
async def test_every_cache_format_downloads(jp_fetch, fmt):
    reply = await call(jp_fetch, "mlhandler", "titanic", params={"_cache": "", "_format": fmt})
    assert reply.code == 200, reply.text
    if fmt in api.MIME:
        assert reply.headers["Content-Type"].startswith(api.MIME[fmt])


def test_tables_widgets_and_readme_use_the_vocabulary():
    assert tables.FORMATS == api.FORMATS
    assert all(tables.MIME[f] == api.MIME[f] for f in api.FORMATS)
    assert tuple(upload.ACTIONS) == api.UPLOAD_ACTIONS
    assert set(upload.CLASSIFIER_METRICS) == set(api.METRICS["classifier"])
    for action in api.ACTIONS:
        assert f"`_action={action}`" in README, action
    for key in api.GET_KEYS:
        assert f"`{key}`" in README, key
    for fmt in api.PREDICT_FORMATS[1:]:
        assert fmt in README
    assert "`_format=table`" in README
    for action in api.LIST_ACTIONS:
        assert f"?_action={action}`" in README, action
    for key in api.TABLE_KEYS:
        assert f"`&{key}=true`" in README, key
