"""The OpenAPI 3 document of one model's MLHandler API (``GET mlhandler/{name}?_openapi``).

A pure function of the model's info (``MLModel.info()``: its feature schema, target, class and
parameters) and the server's base URL (and of the installed scikit-learn, whose estimator names
``class`` lists): no I/O, no server state. The document describes what the handlers in
``handlers.py`` actually do, so that schemathesis can fuzz the server against it
(tests/test_fuzz_openapi.py, tests/test_fuzz_estimators.py). A PUT body is described as the
request allow-list (``mlwidget.options.from_request``) reads it: options and parameters, flat or
nested under ``model`` and ``params``; the keys it refuses are documented 403s.

OpenAPI has one operation per path and method, while MLHandler multiplexes GET and POST with
query flags (``_model``, ``_cache``, ``_action``, ...). Each method is therefore one operation
whose flags are optional parameters and whose 200 answer is any of the shapes the flags select
(``anyOf``); the descriptions say which flag gives which.

What does not depend on the model (the texts, the fixed schemas and the operations' skeletons)
is data: ``openapi_static.json`` beside this module. This module fills in the rest: the
features, the parameters, the examples, the estimator classes, and the vocabulary of
``mlwidget.api`` and ``mlwidget.options`` (the nulls of the data file).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any
from urllib.parse import quote

from mlwidget import __version__, api
from mlwidget import export as export_
from mlwidget.estimators import KINDS, list_estimators
from mlwidget.options import ALIASES, REFUSED_PARAMS, SERVER_ONLY, refused_reason

STATIC: dict[str, Any] = json.loads(
    resources.files(__package__).joinpath("openapi_static.json").read_text(encoding="utf-8")
)
TEXTS: dict[str, str] = STATIC["texts"]
ERRORS: dict[str, str] = STATIC["errors"]
OPENAPI_VERSION: str = STATIC["openapi"]
# Options a PUT may set beside the class, target and parameters (mlwidget.options).
BOOL_ALIASES = sorted(k for k, v in ALIASES.items() if v in api.BOOL_OPTIONS)  # dopna, ...
# What a PUT may not set, at any depth of its body or in its query (mlwidget.options).
REFUSED_KEYS = [*SERVER_ONLY, *REFUSED_PARAMS]
# The sentence that links the same document rendered for humans (pages.py, templates/api.html).
TEXTS_HTML_PAGE = (
    "\n\nThis document as a page, with copy-paste snippets (curl, Python requests, "
    "tritonclient): {url}?_openapi&_format=html"
)
# GET ?_format=: a table (predictions, ?_cache), the API page (?_openapi), a model file
# (?_download): every value the handlers answer, and no other.
GET_FORMATS = list(
    dict.fromkeys([*api.CACHE_FORMATS, *api.PREDICT_FORMATS, "html", "joblib", *export_.FORMATS])
)
REFUSED_TEXT = TEXTS["refused"].replace("{keys}", ", ".join(f"`{k}`" for k in REFUSED_KEYS))


def ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _static(*keys: str) -> Any:
    """A fresh copy of a part of the data file (the caller fills in its nulls)."""
    part: Any = STATIC
    for key in keys:
        part = part[key]
    return copy.deepcopy(part)


def _refused(text: str) -> str:
    return text.replace("{refused}", REFUSED_TEXT)


def _media_types(content: dict[str, Any]) -> dict[str, Any]:
    """A content map whose keys are api.MIME's format names, keyed by their media types."""
    return {api.MIME.get(key, key): value for key, value in content.items()}


def _flag(name: str, description: str) -> dict[str, Any]:
    """A query key that acts by being present (``?_model``); its value is ignored."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "description": description + TEXTS["flag"],
        "schema": {"type": "string"},
        "example": "",
    }


def _operation(method: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """An operation's static part, and its parameters by name (to fill in)."""
    op = _static("operations", method)
    if "parameters" in op:
        op["parameters"] = [
            _flag(p["flag"], p["description"]) if "flag" in p else p for p in op["parameters"]
        ]
    for response in op["responses"].values():
        if "content" in response:
            response["content"] = _media_types(response["content"])
    if "requestBody" in op:
        op["requestBody"]["content"] = _media_types(op["requestBody"]["content"])
    return op, {p["name"]: p for p in op.get("parameters", [])}


def _json_type(values: list[Any]) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "boolean"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "number"
    return "string"


def feature_schema(feature: Mapping[str, Any], nullable: bool = False) -> dict[str, Any]:
    """The JSON schema of one feature value, from its ``MLModel.features`` entry."""
    categories = feature.get("categories")
    schema: dict[str, Any]
    if feature.get("kind") == "category" and categories:
        values = list(categories)
        schema = {"type": _json_type(values), "enum": values}
        if nullable:
            schema["enum"] = [*values, None]
    elif feature.get("dtype") == "number":
        schema = {"type": "number"}
    else:
        schema = {"type": "string"}
    if nullable:
        schema["nullable"] = True
    return schema


def _feature_param(feature: Mapping[str, Any]) -> dict[str, Any]:
    kind = feature.get("kind")
    text = TEXTS["feature"].format(name=feature["name"], kind=kind, dtype=feature.get("dtype"))
    if kind == "category":
        text += TEXTS["feature_category"]
    elif feature.get("dtype") == "number":
        text += TEXTS["feature_number"]
    param = {
        "name": feature["name"],
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "description": text,
        "schema": feature_schema(feature),
    }
    if feature.get("default") is not None:
        param["example"] = feature["default"]
    return param


def _param_schema(value: Any) -> dict[str, Any] | None:
    """A query parameter's schema from a hyper-parameter's current value (None: not from a URL)."""
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str) or value is None:
        return {"type": "string"}
    return None


def _schemas(features: list[Mapping[str, Any]], target: str | None) -> dict[str, Any]:
    """The component schemas: the data file's, with the model's features and the vocabulary."""
    schemas = _static("components", "schemas")
    put = _static("put_options")
    options: dict[str, Any] = {
        **put["options"],
        **{key: put["column_list"] for key in api.LIST_OPTIONS},
        **{key: put["flag"] for key in (*api.BOOL_OPTIONS, *BOOL_ALIASES)},
    }
    # Keys the allow-list refuses at any depth: a schema no value fits (`not: {}`), so that a
    # valid body has none of them, and a 403 when one arrives.
    refused = {
        key: {"not": {}, "description": TEXTS["refused_key"].format(key=key, reason=why)}
        for key in REFUSED_KEYS
        for why in [refused_reason(key)]
    }
    options.update(refused)
    schemas["EstimatorClass"]["anyOf"][0]["enum"] = list_estimators()
    schemas["Params"]["description"] = _refused(schemas["Params"]["description"])
    schemas["Params"]["properties"] = refused
    schemas["ModelOptions"]["properties"] = options
    schemas["PutBody"]["description"] = _refused(schemas["PutBody"]["description"])
    schemas["PutBody"]["properties"] = {**options, "model": ref("ModelOptions")}

    row_props = {str(f["name"]): feature_schema(f, nullable=True) for f in features}
    if target and target not in row_props:
        row_props[target] = {"description": TEXTS["row_target"]}
    schemas["Row"]["properties"] = row_props
    if features:
        schemas["Row"]["required"] = [str(f["name"]) for f in features]
    for key in ("deleted", "absent"):
        schemas["DeleteResult"]["properties"][key]["items"]["enum"] = list(api.DELETE_ITEMS)
    schemas["ModelInfo"]["properties"]["kind"]["enum"] = [*KINDS, None]
    return schemas


def _components(features: list[Mapping[str, Any]], target: str | None) -> dict[str, Any]:
    error = {"application/json": {"schema": ref("Error")}}
    responses = {
        f"Error{code}": {"description": text, "content": copy.deepcopy(error)}
        for code, text in ERRORS.items()
    }
    responses["Error403Put"] = {
        "description": ERRORS["403"] + " " + REFUSED_TEXT,
        "content": copy.deepcopy(error),
    }
    return {
        "schemas": _schemas(features, target),
        "responses": responses,
        "securitySchemes": _static("components", "securitySchemes"),
    }


def _put_operation(info: Mapping[str, Any], target: str | None) -> dict[str, Any]:
    """PUT: the options and the current class's parameters as query keys, and a body."""
    params = info.get("params") or {}
    op, named = _operation("put")
    op["description"] = _refused(op["description"])
    if info.get("model"):
        named["class"]["example"] = info["model"]
    if target:
        named["target_col"]["example"] = target
    put_params = op["parameters"]
    put_params.extend(
        {
            "name": key,
            "in": "query",
            "required": False,
            "description": TEXTS["list_option"].format(key=key),
            "style": "form",
            "explode": True,
            "schema": {"type": "array", "items": {"type": "string"}},
        }
        for key in api.LIST_OPTIONS
    )
    put_params.extend(
        {"name": key, "in": "query", "required": False, "schema": {"type": "boolean"}}
        for key in api.BOOL_OPTIONS
    )
    taken = {p["name"] for p in put_params}
    for key, value in sorted(params.items()):
        schema = _param_schema(value)
        if schema is None or key in taken or key.startswith("_") or refused_reason(key):
            continue  # a refused parameter (memory, ...) is a 403, described with the body
        put_params.append(
            {
                "name": key,
                "in": "query",
                "required": False,
                "description": TEXTS["param"].format(model=info.get("model")),
                "schema": schema,
                **({"example": value} if value is not None else {}),
            }
        )
    model_class = info.get("model") or "LogisticRegression"
    example_params = {
        k: v
        for k, v in sorted(params.items())
        if _param_schema(v) is not None
        and v is not None
        and not k.startswith("_")
        and not refused_reason(k)
    }
    two = dict(list(example_params.items())[:2])
    examples = op["requestBody"]["content"]["application/json"]["examples"]
    examples["flat"]["value"] = {"class": model_class, **two}
    examples["nested"]["value"] = {
        "model": {
            "class": model_class,
            **({"target_col": target} if target else {}),
            "params": dict(two),
        }
    }
    return op


def _description(info: Mapping[str, Any], name: str, target: str | None) -> str:
    fitted = info.get("fitted") or {}
    lines = [
        TEXTS["about"].format(name=name),
        f"Configured estimator: {info.get('model') or 'none yet'}"
        + (f" ({info['kind']})" if info.get("kind") else "")
        + (f"; target column `{target}`." if target else "."),
    ]
    if fitted:
        lines.append(
            f"Serving: a fitted {fitted.get('model')} trained on {fitted.get('rows')} rows"
            + (f" at {fitted['trained_at']}." if fitted.get("trained_at") else ".")
        )
    else:
        lines.append(TEXTS["not_fitted"])
    lines.append(TEXTS["footer"])
    return "\n\n".join(lines)


def openapi_document(info: Mapping[str, Any], base_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3 document of the model whose ``MLModel.info()`` is ``info``, served under
    ``base_url`` (the Jupyter server's base URL: a path such as ``/`` or ``/user/me/``, or an
    absolute URL)."""
    name = str(info["name"])
    features = [f for f in info.get("schema") or [] if isinstance(f, Mapping) and "name" in f]
    target = info.get("target_col")
    server = base_url.rstrip("/") or "/"

    get_op, named = _operation("get")
    named["_format"]["schema"]["enum"] = list(GET_FORMATS)
    get_op["parameters"].extend(_feature_param(f) for f in features)

    post_op, named = _operation("post")
    named["_action"]["schema"]["enum"] = list(api.ACTIONS)
    named["_format"]["schema"]["enum"] = list(api.PREDICT_FORMATS)
    named["_metric"]["example"] = "r2" if info.get("kind") == "regressor" else "accuracy"
    if target:
        named["target_col"]["example"] = target

    delete_op, named = _operation("delete")
    named["delete"]["schema"]["enum"] = list(api.DELETE_ITEMS)

    preview_op, named = _operation("list_post")  # POST mlhandler/?_action=preview
    named["_action"]["schema"]["enum"] = list(api.LIST_ACTIONS)

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": TEXTS["title"].format(name=name),
            "version": __version__,
            "description": _description(info, name, target)
            + TEXTS_HTML_PAGE.format(url=f"{base_url.rstrip('/')}/mlhandler/{quote(name)}"),
        },
        "servers": [{"url": server}],
        "security": [{"jupyterToken": []}],
        "paths": {
            "/mlhandler/": {"get": _operation("list")[0], "post": preview_op},
            f"/mlhandler/{name}": {
                "get": get_op,
                "post": post_op,
                "put": _put_operation(info, target),
                "delete": delete_op,
            },
            # the Open Inference Protocol (V2) paths of this model (docs/interop.md)
            f"/mlhandler/v2/models/{name}": {"get": _operation("v2_metadata")[0]},
            f"/mlhandler/v2/models/{name}/ready": {"get": _operation("v2_ready")[0]},
            f"/mlhandler/v2/models/{name}/infer": {"post": _operation("v2_infer")[0]},
        },
        "components": _components(features, target),
    }
