"""What the API page (``GET {base_url}mlhandler/{name}?_openapi&_format=html``) shows: the
model's OpenAPI document as a list of operations, and copy-paste snippets (curl, Python
``requests``, JavaScript ``fetch``, ``tritonclient``) filled with a typical row of the model's
features and the server's URL. They send a scoped key (``$MLWIDGET_KEY``, from the model page's
Share panel or ``model.share()``), never the server's own token. Pure: no I/O, no server state
(pages.py renders ``templates/api.html``)."""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from mlwidget.jsonable import to_jsonable

METHODS = ("get", "post", "put", "delete")
# Where the snippets find the caller's key: a scoped key (docs/sharing.md), not the server's
# token, which opens the whole Jupyter server.
KEY_VAR = "MLWIDGET_KEY"


def typical_row(info: Mapping[str, Any]) -> dict[str, Any]:
    """One value per feature: its default (the median or the most common value), else a
    placeholder of its type."""
    row: dict[str, Any] = {}
    for feature in info.get("schema") or []:
        if not isinstance(feature, Mapping) or "name" not in feature:
            continue
        value = to_jsonable(feature.get("default"))
        if value is None:
            categories = feature.get("categories") or []
            if categories:
                value = to_jsonable(categories[0])
            else:
                value = 0 if feature.get("kind") == "number" else ""
        row[str(feature["name"])] = value
    return row


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _py(row: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in row.items()) + "}"


def snippets(info: Mapping[str, Any], server: str, base_url: str) -> list[dict[str, str]]:
    """The snippets, each ``{"id", "title", "lang", "code"}`` (and ``send``: the path of a GET
    the page's Send button makes itself). ``server`` is the scheme and host the request came
    to (``http://127.0.0.1:8888``), ``base_url`` Jupyter's base URL."""
    name = str(info["name"])
    row = typical_row(info)
    root = server.rstrip("/") + "/" + base_url.strip("/")
    root = root.rstrip("/")
    api = f"{root}/mlhandler/{name}"
    auth = f'-H "Authorization: Bearer ${KEY_VAR}"'
    py_headers = f'HEADERS = {{"Authorization": "Bearer " + os.environ["{KEY_VAR}"]}}'
    out = []

    query = urlencode({k: _text(v) for k, v in row.items()})
    out.append(
        {
            "id": "curl-get",
            "title": "curl: one row in the query string",
            "lang": "bash",
            "code": f"curl {auth} {shlex.quote(api + '?' + query)}",
            # the same request, sent by the page itself (its own login, not a key): Send
            "send": "/" + f"{base_url.strip('/')}/mlhandler/{name}?{query}".lstrip("/"),
        }
    )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(row.keys())
    writer.writerow([_text(v) for v in row.values()])
    lines = " ".join(shlex.quote(line) for line in buf.getvalue().splitlines())
    out.append(
        {
            "id": "curl-csv",
            "title": "curl: a CSV file (here, one row made by printf) to bulk predictions",
            "lang": "bash",
            "code": f"printf '%s\\n' {lines} |\n  curl {auth} -H \"Content-Type: text/csv\" "
            f"--data-binary @- {shlex.quote(api + '?_action=predict')}",
        }
    )
    out.append(
        {
            "id": "python-requests",
            "title": "Python requests",
            "lang": "python",
            "code": "\n".join(
                [
                    "import os",
                    "",
                    "import requests",
                    "",
                    f"URL = {api!r}",
                    py_headers,
                    f"row = {_py(row)}",
                    "",
                    "# one row in the query string",
                    "print(requests.get(URL, params=row, headers=HEADERS).json())",
                    "# many rows: JSON records in the body",
                    "reply = requests.post(URL, params={'_action': 'predict'}, json=[row], "
                    "headers=HEADERS)",
                    "print(reply.json())",
                ]
            ),
        }
    )
    out.append(
        {
            "id": "javascript-fetch",
            "title": "JavaScript fetch (Node 18+, or a web app on an origin the owner allows)",
            "lang": "javascript",
            "code": "\n".join(
                [
                    f"const API = {json.dumps(api)};",
                    "// a web app: the key it was given instead of process.env (CORS: docs/sharing.md)",
                    f'const HEADERS = {{ Authorization: "Bearer " + process.env.{KEY_VAR} }};',
                    f"const row = {json.dumps(row)};",
                    "// one row in the query string",
                    'fetch(API + "?" + new URLSearchParams(row), { headers: HEADERS })',
                    "  .then((reply) => reply.json())",
                    "  .then((answer) => console.log(JSON.stringify(answer)))",
                    "  // many rows: JSON records in the body",
                    '  .then(() => fetch(API + "?_action=predict", {',
                    '    method: "POST",',
                    '    headers: { ...HEADERS, "Content-Type": "application/json" },',
                    "    body: JSON.stringify([row]),",
                    "  }))",
                    "  .then((reply) => reply.json())",
                    "  .then((answer) => console.log(JSON.stringify(answer)));",
                ]
            ),
        }
    )
    parts = urlsplit(root)
    host = parts.netloc + parts.path + "/mlhandler"
    byte_inputs = [
        str(f["name"])
        for f in info.get("schema") or []
        if isinstance(f, Mapping) and f.get("kind") != "number"
    ]
    ssl = ", ssl=True" if parts.scheme == "https" else ""
    out.append(
        {
            "id": "tritonclient",
            "title": "tritonclient (Open Inference Protocol V2)",
            "lang": "python",
            "code": "\n".join(
                [
                    "import os",
                    "",
                    "import numpy as np",
                    "import tritonclient.http as httpclient",
                    "",
                    f"client = httpclient.InferenceServerClient({host!r}{ssl})",
                    py_headers,
                    f"row = {_py(row)}",
                    f"BYTES = {byte_inputs!r}  # categories and text; numbers are FP64",
                    "inputs = []",
                    "for name, value in row.items():",
                    "    if name in BYTES:",
                    '        item = httpclient.InferInput(name, [1], "BYTES")',
                    "        data = np.array([str(value)], dtype=object)",
                    "    else:",
                    '        item = httpclient.InferInput(name, [1], "FP64")',
                    "        data = np.array([value], dtype=np.float64)",
                    "    item.set_data_from_numpy(data, binary_data=False)",
                    "    inputs.append(item)",
                    f"result = client.infer({name!r}, inputs, headers=HEADERS)",
                    'print(result.as_numpy("predict"))',
                ]
            ),
        }
    )
    return out


def _deref(doc: Mapping[str, Any], item: Any) -> Any:
    """An object with its ``$ref`` (``#/components/...``) followed."""
    seen = 0
    while isinstance(item, Mapping) and "$ref" in item and seen < 10:
        part: Any = doc
        for key in str(item["$ref"]).lstrip("#/").split("/"):
            part = part.get(key, {}) if isinstance(part, Mapping) else {}
        item, seen = part, seen + 1
    return item


def schema_text(schema: Any, limit: int = 12) -> str:
    """A schema in a few words: its type or referenced name, and its allowed values."""
    if not isinstance(schema, Mapping):
        return ""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(schema_text(s, limit) for s in schema[key])
    text = str(schema.get("type") or "any")
    if schema.get("type") == "array":
        text = f"array of {schema_text(schema.get('items'), limit)}"
    enum = schema.get("enum")
    if enum:
        shown = ", ".join(_text(v) if v is not None else "null" for v in enum[:limit])
        more = f", … ({len(enum)} in all)" if len(enum) > limit else ""
        text += f": {shown}{more}"
    return text


def operations(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each path and method of the document: what the page lists."""
    out = []
    for path, item in (doc.get("paths") or {}).items():
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, Mapping):
                continue
            params = []
            for p in op.get("parameters", []):
                p = _deref(doc, p)
                params.append(
                    {
                        "name": p.get("name", ""),
                        "in": p.get("in", ""),
                        "required": bool(p.get("required")),
                        "schema": schema_text(p.get("schema")),
                        "description": p.get("description", ""),
                    }
                )
            body = _deref(doc, op.get("requestBody")) or {}
            responses = []
            for status, response in (op.get("responses") or {}).items():
                response = _deref(doc, response)
                responses.append(
                    {
                        "status": str(status),
                        "description": response.get("description", ""),
                        "types": list(response.get("content") or {}),
                    }
                )
            out.append(
                {
                    "id": re.sub(r"[^A-Za-z0-9]+", "-", f"{method}-{path}").strip("-"),
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "parameters": params,
                    "body": {
                        "description": body.get("description", ""),
                        "types": list(body.get("content") or {}),
                    }
                    if body
                    else None,
                    "responses": responses,
                }
            )
    return out
