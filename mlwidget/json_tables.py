"""JSON bodies as tables: records (``[{"Sex": "male", "Age": 22}]``), columns
(``{"Age": [22, 38]}``) or one record. Large arrays of flat records are read straight into
columns by pyarrow; anything else by ``json`` and pandas, with the same answer either way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from .errors import BadRequest


def read_json(content: bytes) -> pd.DataFrame:
    """The table a JSON body holds (a 400 when it does not parse or is no table)."""
    columnar = records_columnar(content)
    if columnar is not None:
        return columnar
    try:
        obj = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(
            f"Expected valid JSON, got a body that does not parse ({exc}). "
            "Send JSON records, columns or one record."
        ) from None
    return from_json(obj)


def from_json(obj: Any) -> pd.DataFrame:
    """A table from parsed JSON: records (a list of objects), columns (``{column: [values]}``)
    or one record (an object of scalars)."""
    if isinstance(obj, list):
        if not obj:
            return pd.DataFrame()
        if not all(isinstance(row, Mapping) for row in obj):
            raise BadRequest(
                "Expected JSON records (a list of objects such as "
                '[{"Sex": "male", "Age": 22}]), got a list with non-object items.'
            )
        return pd.DataFrame.from_records(obj)
    if isinstance(obj, Mapping):
        if not obj:
            raise BadRequest("Expected at least one column, got an empty JSON object.")
        values = list(obj.values())
        if all(isinstance(v, list) for v in values):
            lengths = {len(v) for v in values}
            if len(lengths) > 1:
                raise BadRequest(
                    "Expected JSON columns of equal length ({column: [values]}), got lengths "
                    f"{sorted(lengths)}."
                )
            return pd.DataFrame(dict(obj))
        if any(isinstance(v, list | dict) for v in values):
            raise BadRequest(
                "Expected one JSON record with scalar values, or columns given as lists of "
                "equal length; got a mix of both."
            )
        return pd.DataFrame([dict(obj)])
    raise BadRequest(
        f"Expected JSON records, columns or one record, got a JSON {type(obj).__name__}."
    )


# JSON bodies at least this large are tried with pyarrow's columnar reader first.
ARROW_JSON_MIN_BYTES = 256 * 1024
_RECORD_SEPARATOR = re.compile(rb"\}\s*,\s*\{")
_OPENING = re.compile(rb"\[\s*\{")


def records_columnar(content: bytes) -> pd.DataFrame | None:
    """A large JSON array of flat records, parsed straight into columns (pyarrow, no Python
    object per row), or None when json + ``DataFrame.from_records`` must read it.

    The array becomes line-delimited records by splitting between ``}`` and ``{``. A split
    inside a string puts a raw newline in it, which no JSON reader accepts, so such bodies fail
    here and take the json path. Only columns that read the same both ways are accepted:
    int64, float64 (no integer beyond int64, which json keeps exact), string, and bool without
    gaps (from_records tells a missing key (NaN) from null (None) there). Anything else, e.g.
    dates (pyarrow would parse them), nested values or mixed types, returns None.
    """
    body = content.strip()
    if len(body) < ARROW_JSON_MIN_BYTES or body[:1] != b"[" or body[-1:] != b"]":
        return None
    opening = _OPENING.match(body)
    last = len(body) - 2  # the last record's "}", before any whitespace and the "]"
    while last > 0 and body[last] in b" \t\r\n":
        last -= 1
    if opening is None or body[last] != ord("}"):
        return None
    try:
        import numpy as np
        import pyarrow as pa
        import pyarrow.json as pj
    except ImportError:
        return None
    # one copy of the body: the separators rewritten, the brackets skipped by a buffer slice
    multiline = b"\n" in body or b"\r" in body
    if multiline:
        lines = _RECORD_SEPARATOR.sub(b"}\n{", body)
    else:
        lines = body.replace(b"},{", b"}\n{")
        if b"}, {" in lines:
            lines = lines.replace(b"}, {", b"}\n {")  # same length
    start, stop = opening.end() - 1, len(lines) - (len(body) - last - 1)
    try:
        table = pj.read_json(
            pa.BufferReader(pa.py_buffer(lines)[start:stop]),
            parse_options=pj.ParseOptions(newlines_in_values=multiline),
        )
    except Exception:  # not line-delimited records after all: the json path decides
        return None
    del lines
    if table.num_columns == 0:
        return None
    for column in table.columns:
        kind = column.type
        if pa.types.is_int64(kind) or pa.types.is_string(kind):
            continue
        if pa.types.is_boolean(kind) and column.null_count == 0:
            continue
        if pa.types.is_float64(kind):
            values = column.to_numpy()
            if not (np.abs(values) >= 2.0**63).any():  # NaN compares False
                continue
        return None
    try:
        return table.to_pandas(self_destruct=True, split_blocks=True)
    except Exception:
        return None
