"""Every way a table arrives: DataFrames, records, files, raw bytes, SQL, URL queries.

Formats are csv, json (records, columns or one record), xlsx and parquet. The format comes from
an explicit ``fmt``, then the Content-Type, then the file name, and finally the bytes themselves.
A body in no known format is a 415; a known format that does not parse is a 400; a table over
``limits.current().max_table_cells`` (rows x columns) is a 413, checked before an XLSX or
Parquet file is unpacked.
Every table holds one value per cell (lists or objects are a 400). JSON bodies are read by
json_tables.py, XLSX and Parquet checked by table_limits.py; ``to_bytes``, the way a table
leaves (a download), writes with table_writers.py.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from . import api, table_writers
from . import limits as ceilings
from . import table_limits as limits
from .errors import BadRequest, MLWidgetError, UnsupportedFormat
from .json_tables import from_json, read_json
from .sources import is_database, is_source, read_sql

FORMATS = api.FORMATS
MIME = {fmt: api.MIME[fmt] for fmt in FORMATS}
_CONTENT_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/comma-separated-values": "csv",
    "application/json": "json",
    "text/json": "json",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/parquet": "parquet",
}
_EXTENSIONS = {
    ".csv": "csv",
    ".txt": "csv",
    ".json": "json",
    ".xlsx": "xlsx",
    ".xls": "xlsx",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# Content types that say nothing about the format: fall through to the file name and the bytes.
_VAGUE = set(api.GENERIC_TYPES)


def format_of(
    content: bytes | None = None, content_type: str | None = None, filename: str | None = None
) -> str:
    """The format of a body, from the Content-Type, the file name, then the bytes."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype in _CONTENT_TYPES:
        return _CONTENT_TYPES[ctype]
    if ctype in _VAGUE or ctype.startswith("text/"):
        if filename:
            ext = os.path.splitext(filename)[1].lower()
            if ext in _EXTENSIONS:
                return _EXTENSIONS[ext]
    if content is not None and (ctype in _VAGUE or ctype.startswith("text/")):
        sniffed = sniff(content)
        if sniffed:
            return sniffed
    what = f"Content-Type {ctype!r}" if ctype and ctype not in _VAGUE else "a body"
    if filename:
        what += f" named {os.path.basename(filename)!r}"
    raise UnsupportedFormat(
        f"Expected CSV, JSON, XLSX or Parquet data, got {what} in none of these formats. "
        "Send one of them (set the Content-Type or use a file name ending in .csv, .json, "
        ".xlsx or .parquet)."
    )


def sniff(content: bytes) -> str | None:
    """Guess a format from the first bytes."""
    head = content[:2048].lstrip()
    if content[:4] == b"PK\x03\x04":
        return "xlsx"
    if content[:4] == b"PAR1":
        return "parquet"
    if head[:1] in (b"[", b"{"):
        return "json"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    first = text.splitlines()[0] if text else ""
    if first and any(sep in first for sep in CSV_DELIMITERS):
        return "csv"
    if first and text.count("\n") >= 1:  # one-column CSV
        return "csv"
    return None


CSV_DELIMITERS = (",", "\t", ";", "|")
_CSV_SAMPLE = 64 * 1024
_CSV_ROWS = 200


def csv_delimiter(content: bytes) -> str:
    """The delimiter of a CSV body among , tab ; | (comma when none fits): the one that splits
    the header into several fields and the most of the first rows into as many; csv.Sniffer's
    guess breaks ties. Commas inside quoted fields, or semicolons inside comma-separated text,
    do not mislead it."""
    text = content[:_CSV_SAMPLE].decode("utf-8", "replace")
    if len(content) > _CSV_SAMPLE and "\n" in text:
        text = text[: text.rindex("\n") + 1]  # whole lines only
    try:
        sniffed = csv.Sniffer().sniff(text[:8192], delimiters="".join(CSV_DELIMITERS)).delimiter
    except csv.Error:
        sniffed = ","
    order = [sniffed] + [d for d in CSV_DELIMITERS if d != sniffed]
    best, best_score = ",", None
    for rank, delimiter in enumerate(order):
        try:
            reader = csv.reader(io.StringIO(text), delimiter=delimiter)
            rows = [row for _, row in zip(range(_CSV_ROWS), reader, strict=False) if row]
        except csv.Error:
            continue
        if len(content) > _CSV_SAMPLE and len(rows) > 2:
            rows = rows[:-1]  # the sample may end inside a quoted field
        if not rows or len(rows[0]) < 2:
            continue
        width, data = len(rows[0]), rows[1:]
        fit = sum(len(row) == width for row in data) / len(data) if data else 1.0
        score = (fit, -rank)
        if best_score is None or score > best_score:
            best, best_score = delimiter, score
    return best


def _parse(content: bytes, fmt: str, sheet_name: int | str = 0) -> pd.DataFrame:
    cap = ceilings.current().max_table_cells
    try:
        if fmt == "csv":
            frame = pd.read_csv(io.BytesIO(content), sep=csv_delimiter(content))
            return limits.check_frame(frame, cap, fmt)
        if fmt == "json":
            return limits.check_frame(read_json(content), cap, fmt)
        if fmt == "xlsx":
            return limits.read_xlsx(content, cap, sheet_name)
        if fmt == "parquet":
            return limits.read_parquet(content, cap)
    except MLWidgetError:
        raise
    except pd.errors.EmptyDataError:
        raise BadRequest(
            "Expected a table, got an empty CSV body. Send a header row and data."
        ) from None
    except Exception as exc:  # every reader has its own error types; report them uniformly
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadRequest(
            f"Expected a valid {fmt.upper()} table, but it could not be read: {reason[:200]}. "
            "Check the file and try again."
        ) from None
    raise UnsupportedFormat(f"Expected one of {', '.join(FORMATS)}, got format {fmt!r}.")


def read_table(
    source: Any,
    fmt: str | None = None,
    filename: str | None = None,
    content_type: str | None = None,
) -> pd.DataFrame:
    """A DataFrame from any supported source. Always returns a new frame, with one value in
    each cell.

    Paths and ``{url: ...}`` sources read server files and databases: they come from server
    config or Python only, never from a request (the REST layer passes bytes).
    """
    return limits.require_scalar_cells(_read(source, fmt, filename, content_type))


def _read(source: Any, fmt: str | None, filename: str | None, content_type: str | None):
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if isinstance(source, pd.Series):
        return source.to_frame().T.reset_index(drop=True)
    if isinstance(source, Mapping):
        return read_source(source) if is_source(source) else from_json(source)
    if isinstance(source, list | tuple):
        return from_json(list(source))
    if isinstance(source, str | os.PathLike):
        return _read_file(source, fmt)
    if isinstance(source, bytes | bytearray | memoryview):
        content = bytes(source)
        if not content.strip():
            raise BadRequest(
                "Expected a table, got an empty body. Send CSV, JSON, XLSX or Parquet."
            )
        if fmt is None:
            fmt = format_of(content, content_type, filename)
        return _parse(content, fmt)
    raise BadRequest(
        "Expected a DataFrame, a dict, a list of records, a file path or bytes, got "
        f"{type(source).__name__}."
    )


def _read_file(source: str | os.PathLike, fmt: str | None, sheet_name: Any = None):
    path = Path(source).expanduser()
    if not path.is_file():
        raise BadRequest(f"Expected a data file, but {Path(source).name!r} does not exist.")
    content = path.read_bytes()
    if not content.strip():
        raise BadRequest(f"Expected a table, but the file {path.name!r} is empty.")
    fmt = fmt or format_of(content, None, path.name)
    return _parse(content, fmt, 0 if sheet_name is None else sheet_name)


_EXT_FORMATS = {**{k.lstrip("."): v for k, v in _EXTENSIONS.items()}, "jsondata": "json"}


def read_source(spec: Mapping[str, Any]) -> pd.DataFrame:
    """A table from Gramex's data source form: ``{url: path, ext, sheet_name}`` for a file
    (format from ``ext``, else the file name, else the bytes) or ``{url: SQLAlchemy URL,
    table | query}`` for a database. Other Gramex keys are ignored (see source_warnings)."""
    url = spec["url"]
    if is_database(url):
        if not spec.get("query") and not spec.get("table"):
            raise BadRequest(
                "Expected data.table or data.query with the database URL in data.url, got "
                "neither. Add one (e.g. table: passengers). To pass one row with a column "
                "named url, use a list of records or a DataFrame."
            )
        return read_sql(spec)
    ext = spec.get("ext")
    fmt = None
    if ext:
        fmt = _EXT_FORMATS.get(str(ext).lower().lstrip("."))
        if fmt is None:
            raise UnsupportedFormat(
                f"Expected data.ext to be one of csv, json, xlsx or parquet, got {ext!r}. "
                "Convert the file to one of these formats."
            )
    sheet_name = spec.get("sheet_name")
    if sheet_name is not None and not isinstance(sheet_name, str | int):
        raise BadRequest(
            f"Expected data.sheet_name to be a sheet's name or number, got {sheet_name!r}."
        )
    return _read_file(url, fmt, sheet_name)


def from_query(args: Mapping[str, list[Any]]) -> pd.DataFrame:
    """Rows from URL query arguments: repeated keys give several rows; ``Age=`` is missing."""
    cols = {k: list(v) for k, v in args.items() if not k.startswith("_")}
    if not cols:
        raise BadRequest("Expected feature values in the query (e.g. ?Sex=male&Age=22), got none.")
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise BadRequest(
            f"Expected every repeated query key to appear the same number of times (one per "
            f"row), got {detail}."
        )
    decoded = {
        k: [(x.decode("utf-8", "replace") if isinstance(x, bytes) else x) for x in v]
        for k, v in cols.items()
    }
    frame = pd.DataFrame(decoded, dtype=object)
    return frame.where(frame != "", None)


def to_bytes(df: pd.DataFrame, fmt: str) -> tuple[bytes, str, str]:
    """Serialize a table: (content, mime type, file extension). A table the format cannot
    hold is a BadRequest naming the reason."""
    try:
        return table_writers.write(df, fmt)
    except BadRequest:
        raise
    except Exception as exc:  # the writers' own errors (e.g. XLSX's row limit)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadRequest(
            f"The table cannot be written as {fmt.upper()}: {reason[:200]}. "
            "Ask for _format=csv or json instead."
        ) from None
