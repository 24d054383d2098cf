"""The Open Inference Protocol (KServe's V2): model metadata from the feature schema, an
inference request decoded into a table, and predictions encoded as outputs. Pure: no store and
no HTTP; the server's v2 handlers call these with a model's info and its answers.

Inputs come as one input per feature column (MLServer's pandas convention: ``name`` is the
column), or as one 2-D input whose ``parameters.columns`` names the columns. BYTES values are
strings, or base64 when the input's ``parameters.content_type`` is ``base64``. The binary data
extension (``Inference-Header-Content-Length``) is read too: tritonclient sends it by default.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from . import limits
from .errors import BadRequest, PayloadTooLarge
from .oip_columns import table_column, typed_column

NUMERIC = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
DATATYPES = (*NUMERIC, "BYTES")
OUTPUTS = ("predict", "predict_proba")


def feature_datatype(feature: Mapping[str, Any]) -> str:
    """BYTES for a categorical or text feature, FP64 for a number."""
    return "FP64" if feature.get("kind") == "number" else "BYTES"


def label_datatype(labels: list[Any]) -> str:
    """The datatype of predictions: BYTES for strings, INT64 for integers, FP64 for numbers."""
    kinds = set(map(type, labels)) - {type(None)}
    if kinds <= {bool, int, float, str}:  # plain values (the usual): decided by their types
        if kinds and kinds <= {bool, int}:
            return "INT64"
        return "FP64" if kinds and kinds <= {int, float} else "BYTES"
    values = [v for v in labels if v is not None]
    if values and all(isinstance(v, bool | int) for v in values):
        return "INT64"
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def metadata(info: Mapping[str, Any], versions: list[int], classes: list[Any] | None) -> dict:
    """``GET v2/models/{name}``: its inputs (the features) and outputs."""
    fitted = info.get("fitted") or {}
    kind = info.get("kind")
    outputs: list[dict[str, Any]] = [
        {"name": "predict", "datatype": _predict_datatype(info, classes), "shape": [-1]}
    ]
    if classes is not None:
        outputs.append(
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": [-1, len(classes)],
                "parameters": {"classes": classes},
            }
        )
    return {
        "name": info["name"],
        "versions": [str(v) for v in versions],
        "platform": "sklearn",
        "inputs": [
            {"name": f["name"], "datatype": feature_datatype(f), "shape": [-1]}
            for f in info.get("schema") or []
        ],
        "outputs": outputs,
        "parameters": {
            "class": fitted.get("model"),
            "kind": kind,
            "target_col": info.get("target_col"),
            "version": info.get("version"),
        },
    }


def _predict_datatype(info: Mapping[str, Any], classes: list[Any] | None) -> str:
    if classes is not None:
        return label_datatype(classes)
    return "FP64" if info.get("kind") == "regressor" else "INT64"


# --------------------------------------------------------------------------------- requests


def parse_body(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """The JSON request, and the binary tail when the binary data extension is used."""
    if header_length:
        try:
            size = int(header_length)
        except ValueError:
            raise BadRequest(
                f"Expected Inference-Header-Content-Length to be a byte count, got "
                f"{header_length[:40]!r}."
            ) from None
        if not 0 < size <= len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length is {size}, but the body has {len(body)} bytes."
            )
        head, tail = body[:size], body[size:]
    else:
        head, tail = body, b""
    try:
        request = json.loads(head)
    except RecursionError:
        raise BadRequest("The inference request is nested too deeply.") from None
    except ValueError as exc:
        raise BadRequest(
            f"Expected an inference request as JSON, got invalid JSON ({exc})."
        ) from None
    if not isinstance(request, dict):
        raise BadRequest(
            f'Expected an inference request object {{"inputs": [...]}}, got {type(request).__name__}.'
        )
    return request, tail


def _flat(data: Any, depth: int = 0) -> list[Any]:
    """An input's data, row-major: nested lists (a 2-D tensor as rows) are flattened."""
    if not isinstance(data, list):
        raise BadRequest(f"Expected an input's data to be a list, got {type(data).__name__}.")
    if depth > 2:
        raise BadRequest("Expected an input's data nested at most as deep as its shape (2).")
    if data and isinstance(data[0], list):  # rows of a 2-D tensor (else a flat list)
        out: list[Any] = []
        for item in data:
            out.extend(_flat(item, depth + 1) if isinstance(item, list) else [item])
        return out
    return data


def _binary_values(raw: bytes, datatype: str, name: str) -> list[Any]:
    if datatype == "BYTES":
        values, at = [], 0
        while at < len(raw):
            if at + 4 > len(raw):
                raise BadRequest(f"Input {name!r}: its binary BYTES data is cut short.")
            (length,) = struct.unpack_from("<I", raw, at)
            at += 4
            values.append(raw[at : at + length].decode("utf-8", "replace"))
            at += length
        return values
    try:
        return np.frombuffer(raw, dtype=NUMERIC[datatype]).tolist()
    except ValueError:
        raise BadRequest(
            f"Input {name!r}: {len(raw)} bytes are not a whole number of {datatype} values."
        ) from None


def _values(
    item: Mapping[str, Any], datatype: str, tail: bytes, offset: int
) -> tuple[list[Any], int]:
    """An input's values (``datatype``: one of DATATYPES), and the offset of the next input's
    binary data in ``tail``."""
    name = item.get("name")
    parameters = item.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest(f"Input {name!r}: expected parameters to be an object.")
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if not isinstance(size, int) or size < 0 or offset + size > len(tail):
            raise BadRequest(f"Input {name!r}: binary_data_size {size!r} is beyond the body.")
        values = _binary_values(tail[offset : offset + size], datatype, str(name))
        return values, offset + size
    if "data" not in item:
        raise BadRequest(f"Input {name!r} has no data (and no binary_data_size).")
    values = _flat(item["data"])
    if datatype == "BYTES" and parameters.get("content_type") == "base64":
        out = []
        for v in values:
            try:
                out.append(base64.b64decode(str(v), validate=True).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                raise BadRequest(f"Input {name!r}: {str(v)[:40]!r} is not base64.") from None
        values = out
    return values, offset


def request_frame(
    request: Mapping[str, Any],
    tail: bytes,
    features: list[str],
    numeric: tuple[str, ...] = (),
    max_cells: int | None = None,
) -> pd.DataFrame:
    """The rows an inference request carries, as a table with the features' names.
    ``numeric``: features whose values are numbers (categories such as Pclass 1, 2, 3 too): text
    that reads as numbers is converted at once, column by column (else the model's casting
    says which value is wrong)."""
    columns = request_columns(request, tail, features, numeric, max_cells)
    return pd.DataFrame({f: table_column(columns[f], f in numeric) for f in features})


def request_columns(
    request: Mapping[str, Any],
    tail: bytes,
    features: list[str],
    numeric: tuple[str, ...] = (),
    max_cells: int | None = None,
) -> dict[str, np.ndarray]:
    """What ``request_frame`` reads, before the table: each feature's values as a typed array
    (float64, or objects), the refusals the same. ``{f: a.tolist()}`` are the values of the
    table's columns for a few rows (what the server's event loop gives the compiled predictor)."""
    if max_cells is None:
        max_cells = limits.current().max_table_cells
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest(
            'Expected "inputs": a non-empty list of {"name", "shape", "datatype", "data"}.'
        )
    columns: dict[str, list[Any]] = {}
    rows: int | None = None
    offset = 0
    for item in inputs:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest('Expected each input to be an object with a "name".')
        name, shape, datatype = item["name"], item.get("shape"), item.get("datatype")
        if datatype not in DATATYPES:
            raise BadRequest(
                f"Input {name!r}: expected a datatype of {', '.join(DATATYPES)}, got {datatype!r}."
            )
        if (
            not isinstance(shape, list)
            or not shape
            or not all(isinstance(n, int) and n >= 0 for n in shape)
            or len(shape) > 2
        ):
            raise BadRequest(
                f"Input {name!r}: expected a shape of one or two sizes, got {shape!r}."
            )
        if math.prod(shape) > max_cells:
            raise PayloadTooLarge(
                f"Input {name!r}: its shape {shape} is over this server's ceiling of "
                f"{max_cells:,} values in a request (MLWidgetApp.max_table_cells)."
            )
        values, offset = _values(item, datatype, tail, offset)
        if len(values) != math.prod(shape):
            raise BadRequest(
                f"Input {name!r}: its shape {shape} holds {math.prod(shape)} values, but "
                f"{len(values)} arrived."
            )
        names = (item.get("parameters") or {}).get("columns")
        if len(shape) == 2 and (shape[1] > 1 or names):
            if not isinstance(names, list) or len(names) != shape[1]:
                raise BadRequest(
                    f"Input {name!r} is 2-D ({shape}): name its {shape[1]} columns in "
                    '"parameters": {"columns": [...]}, or send one input per column.'
                )
            grid = np.array(values, dtype=object).reshape(shape)
            for j, column in enumerate(names):
                columns[str(column)] = grid[:, j].tolist()
        else:
            columns[name] = values
        count = shape[0]
        if rows is not None and count != rows:
            raise BadRequest(
                f"Every input must have the same number of rows: {name!r} has {count}, "
                f"another {rows}."
            )
        rows = count
    if (rows or 0) * max(1, len(features)) > max_cells:
        raise PayloadTooLarge(
            f"The request has {rows:,} rows of {len(features)} features, over this server's "
            f"ceiling of {max_cells:,} values (MLWidgetApp.max_table_cells). Send fewer rows."
        )
    missing = [f for f in features if f not in columns]
    if missing:
        raise BadRequest(
            f"Expected an input for each feature; missing {', '.join(map(repr, missing))}. "
            f"The model's inputs: {', '.join(map(repr, features))} (GET v2/models/<name>)."
        )
    return {f: typed_column(f, columns[f], f in numeric) for f in features}


def requested(request: Mapping[str, Any]) -> list[str]:
    """The outputs asked for (default: predict)."""
    outputs = request.get("outputs")
    if outputs is None:
        return ["predict"]
    if not isinstance(outputs, list):
        raise BadRequest('Expected "outputs" to be a list of {"name": ...}.')
    names = []
    for item in outputs:
        name = item.get("name") if isinstance(item, dict) else None
        if name not in OUTPUTS:
            raise BadRequest(f"Expected outputs named {' or '.join(OUTPUTS)}, got {name!r}.")
        names.append(name)
    return names or ["predict"]


# --------------------------------------------------------------------------------- responses


def response(
    name: str,
    version: int | None,
    request: Mapping[str, Any],
    predictions: list[Any] | None,
    probabilities: list[dict[Any, float]] | None,
) -> dict[str, Any]:
    """The inference response: ``predict`` and/or ``predict_proba`` outputs."""
    outputs: list[dict[str, Any]] = []
    if predictions is not None:
        outputs.append(
            {
                "name": "predict",
                "datatype": label_datatype(predictions),
                "shape": [len(predictions)],
                "data": predictions,
            }
        )
    if probabilities is not None:
        classes = list(probabilities[0]) if probabilities else []
        outputs.append(
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": [len(probabilities), len(classes)],
                "data": [row[c] for row in probabilities for c in classes],
                "parameters": {"classes": classes},
            }
        )
    answer: dict[str, Any] = {
        "model_name": name,
        "model_version": None if version is None else str(version),
        "outputs": outputs,
    }
    if "id" in request:
        answer["id"] = request["id"]
    return answer
