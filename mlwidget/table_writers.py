"""Tables as bytes for a download: CSV, JSON, XLSX and Parquet, each safe to open. Text stays
text: a cell such as ``=HYPERLINK(...)`` opens as the text it is, not as a formula a
spreadsheet runs; control characters a worksheet cannot hold are dropped; a Parquet column that
mixes numbers and text is written as text. ``tables.to_bytes`` is the public way in.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pandas as pd

from .api import FORMATS, MIME
from .errors import BadRequest


def write(df: pd.DataFrame, fmt: str) -> tuple[bytes, str, str]:
    """``df`` in the format ``fmt``: (content, mime type, file extension). The writers' own
    errors (e.g. XLSX's row limit) pass through."""
    if fmt == "csv":
        return csv_bytes(df), MIME["csv"], ".csv"
    if fmt == "json":
        return df.to_json(orient="records").encode("utf-8"), MIME["json"], ".json"
    if fmt == "xlsx":
        buf = io.BytesIO()
        with pd.ExcelWriter(buf, engine="openpyxl") as writer:
            _xlsx_safe(df).to_excel(writer, index=False)
            for sheet in writer.book.worksheets:
                _text_as_text(sheet)
        return buf.getvalue(), MIME["xlsx"], ".xlsx"
    if fmt == "parquet":
        buf = io.BytesIO()
        _parquet_safe(df).to_parquet(buf, index=False)
        return buf.getvalue(), MIME["parquet"], ".parquet"
    raise BadRequest(f"Expected _format to be one of {', '.join(FORMATS)}, got {fmt!r}.")


def _xlsx_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Without the control characters that a worksheet cannot hold (openpyxl refuses them)."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def clean(value: Any) -> Any:
        return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value

    out = df.rename(columns=clean)
    for i in _text_columns(out):
        out.isetitem(i, out.iloc[:, i].map(clean).array)
    return out


def _text_as_text(sheet: Any) -> None:
    """Text cells stay text: openpyxl makes "=..." a live formula and "#N/A" an error cell;
    the downloaded file would run the formula (e.g. =HYPERLINK(...)) when opened. Formula-like
    text also gets Excel's quote prefix (a typed leading '): editing the cell keeps it text."""
    for row in sheet.iter_rows():
        for cell in row:
            if cell.data_type in ("f", "e") and isinstance(cell.value, str):
                cell.data_type = "s"
            if formula_like(cell.value):
                cell.quotePrefix = True


# What a spreadsheet opens as a formula (OWASP's CSV injection list), unless it is a number.
_FORMULA, _NUMBER = tuple("=+-@\t\r"), re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def formula_like(value: Any) -> bool:
    """Text a spreadsheet opens as a formula: ``=1+1``, ``-2+3``, ``@SUM(A1)``; not ``-3.5``."""
    return isinstance(value, str) and value.startswith(_FORMULA) and not _NUMBER.fullmatch(value)


def csv_bytes(df: pd.DataFrame) -> bytes:
    """CSV with formula-like text cells and headers behind a ``'`` (``'=1+1`` opens as text);
    CRLF line ends when a cell holds a CR (then quoted: no row break)."""
    cr = False

    def guard(value: Any) -> Any:
        nonlocal cr
        if not isinstance(value, str):
            return value
        cr = cr or "\r" in value
        return "'" + value if formula_like(value) else value

    out = df.rename(columns=guard)
    cats = [i for i, dtype in enumerate(out.dtypes) if isinstance(dtype, pd.CategoricalDtype)]
    for i in _text_columns(out) + cats:
        out.isetitem(i, out.iloc[:, i].astype(object).map(guard).array)
    return out.to_csv(index=False, lineterminator="\r\n" if cr else "\n").encode("utf-8")


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Text columns that also hold numbers (e.g. appended JSON) as text: Parquet columns
    have one type."""
    out = df.copy()
    for i in _text_columns(out):
        values = out.iloc[:, i]
        if values.dropna().map(type).nunique() > 1:
            out.isetitem(i, values.map(lambda v: v if v is None or v != v else str(v)).array)
    return out


def _text_columns(df: pd.DataFrame) -> list[int]:
    return [
        i
        for i, dtype in enumerate(df.dtypes)
        if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
    ]
