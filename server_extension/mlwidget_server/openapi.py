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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlwidget import __version__, api
from mlwidget.estimators import list_estimators
from mlwidget.options import ALIASES, REFUSED_PARAMS, SERVER_ONLY, refused_reason

OPENAPI_VERSION = "3.0.3"
ACTIONS = list(api.ACTIONS)
PREDICT_FORMATS = list(api.PREDICT_FORMATS)
CACHE_FORMATS = list(api.CACHE_FORMATS)
MIME = api.MIME
# Options a PUT may set (data, path and template name server files: 403 over HTTP).
LIST_OPTIONS = list(api.LIST_OPTIONS)
BOOL_OPTIONS = list(api.BOOL_OPTIONS)
BOOL_ALIASES = sorted(k for k, v in ALIASES.items() if v in BOOL_OPTIONS)  # dopna, drop_duplicates
# What a PUT may not set, at any depth of its body or in its query (mlwidget.options).
REFUSED_KEYS = [*SERVER_ONLY, *REFUSED_PARAMS]
REFUSED_TEXT = (
    f"A PUT that names {', '.join(f'`{k}`' for k in REFUSED_KEYS)} or a parameter whose name "
    "says it holds a path (`*_path`, `*_file`, `*_dir`, `url`, ...), as a query key or as a key "
    "at any depth of the body (the top level, `model`, `params`, inside a value), or that sets "
    "`importance_getter` to anything but a public attribute name (nothing dotted or private), "
    "is a 403 and changes nothing: such options belong in the server config or Python."
)
ERRORS = {
    "400": "Bad input: a body or value that cannot be used, an unknown class, parameter, "
    "_action or _format, a missing feature or target column.",
    "403": "Not authenticated (no or a wrong token), not authorized (Jupyter's authorizer: "
    "`read` for predictions and information, `write` for retrain, append, PUT, DELETE and "
    "_download), or a missing XSRF header on a cookie-authenticated write.",
    "404": "No model by this name, or the model has no fitted estimator or no training data.",
    "409": "A conflicting operation holds the model (its lock); try again.",
    "413": "The request body is over the server's max_body_size.",
    "415": "The body is in none of the formats read (CSV, JSON, XLSX, Parquet, multipart).",
}


def ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: ref(f"Error{code}", "responses") for code in codes}


def _flag(name: str, description: str) -> dict[str, Any]:
    """A query key that acts by being present (``?_model``); its value is ignored."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "description": description + " Present or absent; the value is ignored.",
        "schema": {"type": "string"},
        "example": "",
    }


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
    text = (
        f"Feature `{feature['name']}` ({kind}, {feature.get('dtype')}). "
        "A prediction needs every feature: a request that names some features but not all is "
        "a 400. An empty value is a missing value, imputed. Repeat the key for several rows "
        "(every feature the same number of times)."
    )
    if kind == "category":
        text += " The values seen in training are listed; another value is read as unseen."
    elif feature.get("dtype") == "number":
        text += " A value that is not a number is a 400."
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


def _put_schemas() -> dict[str, Any]:
    """The schemas of a PUT body: options and estimator parameters, flat or nested."""
    leaf = {
        "anyOf": [
            {"type": "string", "nullable": True},
            {"type": "number"},
            {"type": "boolean"},
        ]
    }
    param_value = {
        "description": "An estimator parameter: a number, true/false, null, a string (typed by "
        "the class's declared constraints: `none`, `true`, `3`, `0.5`, or one of its choices), "
        "a list (`hidden_layer_sizes`, `ngram_range`, `estimators` by class name) or a mapping "
        "(`class_weight`). scikit-learn checks the value: a wrong one is a 400 with its message.",
        "anyOf": [
            *leaf["anyOf"],
            {
                "type": "array",
                "items": {"anyOf": [*leaf["anyOf"], {"type": "array", "items": leaf}]},
            },
            {"type": "object", "additionalProperties": leaf},
        ],
    }
    column_list = {
        "description": "Column names; one name is a list of one, null or an empty string none. "
        "Replaces the stored list.",
        "anyOf": [
            {"type": "array", "items": {"type": "string"}},
            {"type": "string", "nullable": True},
        ],
    }
    flag = {
        "description": "true or false (also the strings true/false, yes/no, on/off, 1/0).",
        "anyOf": [
            {"type": "boolean"},
            {"type": "string", "enum": ["true", "false", "yes", "no", "on", "off", "1", "0"]},
        ],
    }
    options: dict[str, Any] = {
        "class": ref("EstimatorClass"),
        "target_col": {
            "type": "string",
            "nullable": True,
            "description": "The column to predict; null (or empty) for an unsupervised estimator.",
        },
        "params": ref("Params"),
        **{key: column_list for key in LIST_OPTIONS},
        **{key: flag for key in (*BOOL_OPTIONS, *BOOL_ALIASES)},
    }
    # Keys the allow-list refuses at any depth: a schema no value fits (`not: {}`), so that a
    # valid body has none of them, and a 403 when one arrives.
    refused = {
        key: {"not": {}, "description": f"Refused over HTTP (403): `{key}` {reason}."}
        for key, reason in (
            *((k, "names a file on the server") for k in SERVER_ONLY),
            *REFUSED_PARAMS.items(),
        )
    }
    options.update(refused)
    return {
        "EstimatorClass": {
            "description": "The estimator class: a scikit-learn estimator name (listed), or a "
            "dotted path, which works if it is scikit-learn's own or is listed in the server's "
            "`MLWidgetApp.allowed_classes` (else a 400; nothing else is ever imported). A new "
            "class resets the parameters.",
            "anyOf": [
                {"type": "string", "enum": list_estimators()},
                {
                    "type": "string",
                    "pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$",
                },
            ],
        },
        "ParamValue": param_value,
        "Params": {
            "type": "object",
            "description": "Estimator parameters by name. An unknown name is a 400 that lists "
            "the valid ones. " + REFUSED_TEXT,
            "properties": refused,
            "additionalProperties": ref("ParamValue"),
        },
        "ModelOptions": {
            "type": "object",
            "description": "Gramex's `model:` block: the class, the target column, the other "
            "options and the parameters (under `params` or beside the options).",
            "properties": options,
            "additionalProperties": ref("ParamValue"),
        },
        "PutBody": {
            "type": "object",
            "description": 'The changes to stage, flat (`{"class": ..., "C": 0.5}`) or '
            'nested as in Gramex (`{"model": {"class": ..., "target_col": ..., '
            '"params": {...}}}`), or both; any key that is not an option is an estimator '
            "parameter. The query's keys are merged in (the query wins). " + REFUSED_TEXT,
            "properties": {**options, "model": ref("ModelOptions")},
            "additionalProperties": ref("ParamValue"),
        },
    }


def _components(features: list[Mapping[str, Any]], target: str | None) -> dict[str, Any]:
    row_props = {str(f["name"]): feature_schema(f, nullable=True) for f in features}
    if target and target not in row_props:
        row_props[target] = {"description": "The target column (retrain, score, append)."}
    row: dict[str, Any] = {
        "type": "object",
        "description": "One row: the features by name (an empty or null value is imputed). "
        "Retrain, score and append also need the target column; append needs exactly the "
        "columns of the stored training data.",
        "properties": row_props,
        "additionalProperties": True,
    }
    if features:
        row["required"] = [str(f["name"]) for f in features]
    non_finite = {"type": "string", "enum": ["nan", "inf", "-inf"]}  # as predictions spell them
    scalar = {
        "description": "A class label, a number, a cluster id, or a transformer's components; a "
        "value that is not a finite number is the string `nan`, `inf` or `-inf`.",
        "anyOf": [
            {"type": "string", "nullable": True},
            {"type": "number"},
            {"type": "boolean"},
            {
                "type": "array",
                "items": {"anyOf": [{"type": "number", "nullable": True}, non_finite]},
            },
        ],
    }
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "string",
                "description": "What was expected, what arrived, what to do. Never a "
                "traceback or a server path.",
            },
            "message": {"type": "string", "description": "Jupyter's message (403s)."},
            "reason": {"type": "string", "nullable": True},
        },
        "additionalProperties": True,
    }
    schemas: dict[str, Any] = {
        **_put_schemas(),
        "Error": error,
        "Row": row,
        "Rows": {
            "description": "JSON records, one record, or columns as equal-length lists.",
            "anyOf": [
                {"type": "array", "items": ref("Row")},
                ref("Row"),
                {"type": "object", "additionalProperties": {"type": "array", "items": {}}},
            ],
        },
        "Prediction": scalar,
        "Predictions": {
            "type": "array",
            "description": "One prediction per input row, in order: a class label, a number, "
            "a cluster id, or a list of components (transformers).",
            "items": ref("Prediction"),
        },
        "Probabilities": {
            "type": "array",
            "description": "One object per row: class label -> probability.",
            "items": {
                "type": "object",
                "additionalProperties": {"type": "number", "nullable": True},
            },
        },
        "Records": {
            "type": "array",
            "description": "Table rows as JSON records.",
            "items": {"type": "object", "additionalProperties": True},
        },
        "Score": {
            "type": "object",
            "required": ["score", "metric"],
            "properties": {
                "score": {"type": "number", "nullable": True},
                "metric": {"type": "string", "nullable": True},
                "rows": {"type": "integer"},
            },
            "additionalProperties": True,
        },
        "TrainResult": {
            "type": "object",
            "required": ["score", "metric", "rows", "model"],
            "properties": {
                "score": {"type": "number", "nullable": True},
                "metric": {"type": "string", "nullable": True},
                "rows": {"type": "integer"},
                "model": {"type": "string"},
                "target_col": {"type": "string", "nullable": True},
                "warnings": {"type": "array", "items": {"type": "string"}},
            },
            "additionalProperties": True,
        },
        "AppendResult": {
            "type": "object",
            "required": ["rows", "appended"],
            "properties": {"rows": {"type": "integer"}, "appended": {"type": "integer"}},
            "additionalProperties": False,
        },
        "DeleteResult": {
            "type": "object",
            "description": "What was deleted, and what was already absent (still a 200).",
            "required": ["name", "deleted", "absent"],
            "properties": {
                "name": {"type": "string"},
                "deleted": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["model", "cache"]},
                },
                "absent": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["model", "cache"]},
                },
            },
            "additionalProperties": False,
        },
        "Feature": {
            "type": "object",
            "required": ["name", "kind", "dtype"],
            "properties": {
                "name": {"type": "string"},
                "kind": {"type": "string", "enum": ["category", "number"]},
                "dtype": {"type": "string", "enum": ["number", "string"]},
                "categories": {"type": "array", "nullable": True, "items": {}},
                "default": {},
            },
            "additionalProperties": True,
        },
        "ModelInfo": {
            "type": "object",
            "description": "The `?_model` answer: the configured (staged) estimator, the fitted "
            "one that serves, whether they differ, and the model's options.",
            "required": ["name", "model", "params", "kind", "target_col", "features", "schema"],
            "properties": {
                "name": {"type": "string"},
                "model": {"type": "string", "nullable": True},
                "params": {"type": "object", "additionalProperties": True},
                "kind": {
                    "type": "string",
                    "nullable": True,
                    "enum": ["classifier", "regressor", "clusterer", "transformer", None],
                },
                "target_col": {"type": "string", "nullable": True},
                "features": {"type": "array", "items": {"type": "string"}},
                "schema": {"type": "array", "items": ref("Feature")},
                "options": {"type": "object", "additionalProperties": True},
                "rows": {"type": "integer"},
                "fitted": {"type": "object", "nullable": True, "additionalProperties": True},
                "stale": {"type": "boolean"},
                "warnings": {"type": "array", "items": {"type": "string"}},
            },
            "additionalProperties": True,
        },
        "ParamsInfo": {
            "type": "object",
            "description": "The `?_params` answer (Gramex's shape).",
            "required": ["opts", "params", "attrs"],
            "properties": {
                "opts": {"type": "object", "additionalProperties": True},
                "params": {
                    "type": "object",
                    "properties": {
                        "class": {"type": "string", "nullable": True},
                        "params": {"type": "object", "additionalProperties": True},
                    },
                },
                "attrs": {"type": "object", "additionalProperties": True},
            },
            "additionalProperties": True,
        },
        "OpenAPI": {
            "type": "object",
            "description": "This document.",
            "required": ["openapi", "info", "paths"],
            "properties": {"openapi": {"type": "string"}},
            "additionalProperties": True,
        },
        "ModelList": {
            "type": "object",
            "required": ["models"],
            "properties": {
                "models": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "url"],
                        "properties": {
                            "name": {"type": "string"},
                            "url": {"type": "string"},
                            "openapi": {"type": "string"},
                            "pattern": {"type": "string"},
                            "error": {"type": "string"},
                        },
                        "additionalProperties": True,
                    },
                }
            },
            "additionalProperties": True,
        },
    }
    responses = {
        f"Error{code}": {
            "description": text,
            "content": {"application/json": {"schema": ref("Error")}},
        }
        for code, text in ERRORS.items()
    }
    responses["Error403Put"] = {
        "description": ERRORS["403"] + " " + REFUSED_TEXT,
        "content": {"application/json": {"schema": ref("Error")}},
    }
    return {
        "schemas": schemas,
        "responses": responses,
        "securitySchemes": {
            "jupyterToken": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "The Jupyter server's token: `Authorization: token <TOKEN>`. "
                "Jupyter also accepts `?token=<TOKEN>` and its login cookie (then writes need "
                "the `X-XSRFToken` header).",
            }
        },
    }


def _binary(description: str) -> dict[str, Any]:
    return {"schema": {"type": "string", "format": "binary"}, "x-description": description}


def openapi_document(info: Mapping[str, Any], base_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3 document of the model whose ``MLModel.info()`` is ``info``, served under
    ``base_url`` (the Jupyter server's base URL: a path such as ``/`` or ``/user/me/``, or an
    absolute URL)."""
    name = str(info["name"])
    features = [f for f in info.get("schema") or [] if isinstance(f, Mapping) and "name" in f]
    target = info.get("target_col")
    fitted = info.get("fitted") or {}
    params = info.get("params") or {}
    server = base_url.rstrip("/") or "/"
    path = f"/mlhandler/{name}"

    description = [
        f"The MLHandler API of the mlwidget model `{name}`, served by a Jupyter server.",
        f"Configured estimator: {info.get('model') or 'none yet'}"
        + (f" ({info['kind']})" if info.get("kind") else "")
        + (f"; target column `{target}`." if target else "."),
    ]
    if fitted:
        description.append(
            f"Serving: a fitted {fitted.get('model')} trained on {fitted.get('rows')} rows"
            + (f" at {fitted['trained_at']}." if fitted.get("trained_at") else ".")
        )
    else:
        description.append("Not fitted yet: predictions answer 404 until a retrain.")
    description.append(
        'Every error is JSON `{"error": ...}` with its status. This document is generated from '
        "the model's training schema; it changes when the model is retrained on other columns."
    )

    get_params = [
        _flag("_openapi", "Answer this OpenAPI document."),
        _flag("_download", "Download the fitted model file (joblib; needs `write` access)."),
        _flag("_model", "Answer the model's information (ModelInfo)."),
        _flag("_params", "Answer Gramex's `_params` shape (ParamsInfo)."),
        _flag("_cache", "Answer the stored training data (JSON records, or a file by _format)."),
        {
            "name": "_format",
            "in": "query",
            "required": False,
            "description": "With features: `records` gives the input rows with the prediction in "
            "the target column, `csv`/`xlsx` that table as a file. With `_cache`: `json` "
            "(records), `csv`, `xlsx`, `parquet`. Another value is a 400.",
            "schema": {"type": "string", "enum": CACHE_FORMATS},
        },
        *(_feature_param(f) for f in features),
    ]
    get_op = {
        "operationId": "get",
        "summary": "Predict from the query, or read the model",
        "description": "Precedence of the flags: `_openapi`, `_download`, `_model`, `_params`, "
        "`_cache`; else, with features in the query, predictions (one row per repetition of "
        "the keys); else the model's HTML page.",
        "parameters": get_params,
        "responses": {
            "200": {
                "description": "Predictions (a list, one per row), ModelInfo, ParamsInfo, the "
                "training data (records or a file), the model file, this document, or the page.",
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                ref("Predictions"),
                                ref("Records"),
                                ref("ModelInfo"),
                                ref("ParamsInfo"),
                                ref("OpenAPI"),
                            ]
                        }
                    },
                    MIME["binary"]: _binary("?_download: the fitted model (joblib)"),
                    MIME["csv"]: _binary("_format=csv"),
                    MIME["xlsx"]: _binary("_format=xlsx"),
                    MIME["parquet"]: _binary("?_cache&_format=parquet"),
                    "text/html": {"schema": {"type": "string"}},
                },
            },
            **_errors("400", "403", "404", "409", "413"),
        },
    }

    body_content = {
        "application/json": {"schema": ref("Rows")},
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "description": "One or more files (CSV, JSON, XLSX, Parquet; concatenated); "
                "other fields act as query arguments.",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
        MIME["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
        MIME["parquet"]: {"schema": {"type": "string", "format": "binary"}},
    }
    post_op = {
        "operationId": "post",
        "summary": "Predict, score, retrain or append with a table in the body",
        "description": "`_action=predict` (default), `predict_proba` and `score` need `read` "
        "access; `retrain` (`train`) and `append` need `write`. predict, predict_proba, score "
        "and append need rows in the body; retrain without a body trains on the stored data.",
        "parameters": [
            {
                "name": "_action",
                "in": "query",
                "required": False,
                "description": "What to do (default predict). Another value is a 400.",
                "schema": {"type": "string", "enum": ACTIONS, "default": "predict"},
            },
            {
                "name": "_format",
                "in": "query",
                "required": False,
                "description": "predict only: `records`, `csv` or `xlsx` answer the input rows "
                "with the predictions.",
                "schema": {"type": "string", "enum": PREDICT_FORMATS},
            },
            {
                "name": "_metric",
                "in": "query",
                "required": False,
                "description": "score (and retrain): a scikit-learn scorer name such as accuracy, "
                "f1_weighted, roc_auc, r2, neg_mean_absolute_error.",
                "schema": {"type": "string"},
                "example": "r2" if info.get("kind") == "regressor" else "accuracy",
            },
            {
                "name": "target_col",
                "in": "query",
                "required": False,
                "description": "retrain: the target column (kept for later retrains).",
                "schema": {"type": "string"},
                **({"example": target} if target else {}),
            },
        ],
        "requestBody": {
            "required": False,
            "description": "A table: JSON, CSV, XLSX, Parquet or a multipart upload. The format "
            "comes from the Content-Type, then the file name, then the content.",
            "content": body_content,
        },
        "responses": {
            "200": {
                "description": "predict: Predictions (or Records/a file with _format); "
                "predict_proba: Probabilities; score: Score; retrain: TrainResult; append: "
                "AppendResult.",
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                ref("Predictions"),
                                ref("Probabilities"),
                                ref("Records"),
                                ref("Score"),
                                ref("TrainResult"),
                                ref("AppendResult"),
                            ]
                        }
                    },
                    MIME["csv"]: _binary("_format=csv"),
                    MIME["xlsx"]: _binary("_format=xlsx"),
                },
            },
            **_errors("400", "403", "404", "409", "413", "415"),
        },
    }

    put_params: list[dict[str, Any]] = [
        _flag("_model", "The model's configuration (Gramex spelling; optional here)."),
        {
            "name": "class",
            "in": "query",
            "required": False,
            "description": "The estimator class: a scikit-learn estimator name (or a dotted path "
            "the server allows). A new class resets the parameters.",
            "schema": ref("EstimatorClass"),
            **({"example": info["model"]} if info.get("model") else {}),
        },
        {
            "name": "target_col",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            **({"example": target} if target else {}),
        },
        *(
            {
                "name": key,
                "in": "query",
                "required": False,
                "description": f"Column names ({key}); repeat the key for a list. Replaces the "
                "stored list.",
                "style": "form",
                "explode": True,
                "schema": {"type": "array", "items": {"type": "string"}},
            }
            for key in LIST_OPTIONS
        ),
        *(
            {"name": key, "in": "query", "required": False, "schema": {"type": "boolean"}}
            for key in BOOL_OPTIONS
        ),
    ]
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
                "description": f"Parameter of {info.get('model')}, typed by scikit-learn's "
                "declared constraints (`none`, `true`/`false`, numbers, strings); an invalid "
                "value is a 400 with scikit-learn's message.",
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
    put_op = {
        "operationId": "put",
        "summary": "Change the estimator class, its parameters and the options (staged)",
        "description": "Nothing is retrained: retrain to apply. Any parameter of the class works "
        "(those of the current class are listed as query keys), in the query or in a JSON body, "
        "flat or nested under `model` and `params` as in Gramex. " + REFUSED_TEXT + " A PUT to "
        "a new name creates that model. Needs `write`.",
        "parameters": put_params,
        "requestBody": {
            "required": False,
            "description": "The same changes as a JSON object: flat, or nested as Gramex's "
            "`model: {class, target_col, params}`.",
            "content": {
                "application/json": {
                    "schema": ref("PutBody"),
                    "examples": {
                        "flat": {
                            "summary": "Options and parameters side by side",
                            "value": {
                                "class": model_class,
                                **dict(list(example_params.items())[:2]),
                            },
                        },
                        "nested": {
                            "summary": "Gramex's nesting",
                            "value": {
                                "model": {
                                    "class": model_class,
                                    **({"target_col": target} if target else {}),
                                    "params": dict(list(example_params.items())[:2]),
                                }
                            },
                        },
                    },
                }
            },
        },
        "responses": {
            "200": {
                "description": "The new ModelInfo.",
                "content": {"application/json": {"schema": ref("ModelInfo")}},
            },
            **_errors("400", "403", "404", "409", "413"),
            "403": ref("Error403Put", "responses"),
        },
    }
    delete_op = {
        "operationId": "delete",
        "summary": "Delete the fitted model or the training data",
        "description": "`_model` deletes the fitted model (options and data stay); `_cache` the "
        "training data (the fitted model keeps serving). Gramex's `delete=model|cache` works "
        "too. Anything else, or nothing, is a 400 and nothing is deleted. Needs `write`.",
        "parameters": [
            _flag("_model", "Delete the fitted model."),
            _flag("_cache", "Delete the training data."),
            {
                "name": "delete",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "enum": ["model", "cache"]},
            },
        ],
        "responses": {
            "200": {
                "description": "What was deleted, and what was already absent: deleting twice "
                "is not an error.",
                "content": {"application/json": {"schema": ref("DeleteResult")}},
            },
            **_errors("400", "403", "404", "409", "413"),
        },
    }
    list_op = {
        "operationId": "list",
        "summary": "The models this server serves",
        "responses": {
            "200": {
                "description": "Each model with its URL and the URL of its OpenAPI document.",
                "content": {"application/json": {"schema": ref("ModelList")}},
            },
            **_errors("403"),
        },
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"mlwidget model {name}",
            "version": __version__,
            "description": "\n\n".join(description),
        },
        "servers": [{"url": server}],
        "security": [{"jupyterToken": []}],
        "paths": {
            "/mlhandler/": {"get": list_op},
            path: {"get": get_op, "post": post_op, "put": put_op, "delete": delete_op},
        },
        "components": _components(features, target),
    }
