"""Ceilings for tables that unpack far bigger than they travel: XLSX (a zip of XML) and Parquet
(compressed columns), plus the one-value-per-cell rule every table obeys.

Each check reads only sizes, metadata or a stream of the XML, so refusing a table costs memory
linear in the body, never in what the body claims to hold. ``max_cells`` is the table-cell
ceiling of the ``Limits`` in force (``limits.current().max_table_cells``, the server's
``MLWidgetApp.max_table_cells``) unless a caller passes one.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from typing import Any
from xml.parsers import expat

import pandas as pd

from . import limits
from .errors import BadRequest, PayloadTooLarge

# An XLSX may unpack to this many times its size, plus XLSX_MIN_UNPACKED (real workbooks unpack
# 5-20 times; a zip bomb about 1000 times).
XLSX_MAX_EXPANSION = 100
XLSX_MIN_UNPACKED = 64 * 2**20
# A Parquet file's data may unpack (and its text decode) to this many times its size.
PARQUET_MAX_EXPANSION = 20
_CHUNK = 64 * 1024
_LETTERS = re.compile(r"\$?([A-Za-z]+)")  # openpyxl reads "$XFD$1" as XFD1


def too_many_cells(
    rows: int, columns: int, max_cells: int, what: str, at_least: bool = False
) -> PayloadTooLarge:
    """The 413 for a table of ``rows`` x ``columns`` over the ceiling."""
    size = f"{rows:,} rows x {columns:,} columns ({rows * columns:,} cells)"
    return PayloadTooLarge(
        f"Expected a table of at most {max_cells:,} cells (rows x columns), got {what} of "
        f"{'at least ' if at_least else ''}{size}. Send a smaller table "
        "(or split it), or ask the server's administrator to raise MLWidgetApp.max_table_cells."
    )


def _size(n: float) -> str:
    """1,000 bytes, 48.4 KB, 200 MB, 98 GB."""
    unit = "bytes"
    for bigger in ("KB", "MB", "GB"):
        if n < 1024:
            break
        n, unit = n / 1024, bigger
    return f"{n:,.1f} {unit}" if unit != "bytes" and n < 10 else f"{n:,.0f} {unit}"


def _cap(max_cells: int | None) -> int:
    return limits.current().max_table_cells if max_cells is None else max_cells


def check_frame(frame: pd.DataFrame, max_cells: int | None, fmt: str) -> pd.DataFrame:
    rows, columns = frame.shape
    max_cells = _cap(max_cells)
    if rows * columns > max_cells:
        raise too_many_cells(rows, columns, max_cells, f"a {fmt.upper()} table")
    return frame


# ------------------------------------------------------------------------------------- XLSX


def read_xlsx(content: bytes, max_cells: int | None, sheet_name: int | str = 0) -> pd.DataFrame:
    """One sheet of an XLSX file as pandas reads it, after checking, without materialising
    anything, that the file unpacks to a bounded size and that the sheet's real extent (from
    the cells present, not its ``<dimension>`` header) fits in ``max_cells``."""
    import openpyxl

    max_cells = _cap(max_cells)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    budget = XLSX_MIN_UNPACKED + XLSX_MAX_EXPANSION * len(content)
    if unpacked > budget:
        raise PayloadTooLarge(
            f"Expected an XLSX file that unpacks to at most {_size(budget)} "
            f"({XLSX_MAX_EXPANSION} times its size plus {_size(XLSX_MIN_UNPACKED)}), got one of "
            f"{_size(len(content))} that unpacks to {_size(unpacked)}. "
            "Save it again from a spreadsheet program, or send the table as CSV or Parquet."
        )
    book = openpyxl.load_workbook(
        io.BytesIO(content), read_only=True, data_only=True, keep_links=False
    )
    try:
        sheet = _sheet(book, sheet_name)
        with book._archive.open(sheet._worksheet_path) as source:  # the part pandas will read
            sheet_extent(source, max_cells, f"XLSX sheet {sheet.title!r}")
    except BaseException:
        book.close()
        raise
    return pd.read_excel(book, engine="openpyxl", sheet_name=sheet.title)  # closes the book


def _sheet(book: Any, sheet_name: int | str) -> Any:
    sheets = book.worksheets
    names = ", ".join(repr(s.title) for s in sheets) or "none"
    if isinstance(sheet_name, int) and not isinstance(sheet_name, bool):
        if 0 <= sheet_name < len(sheets):
            return sheets[sheet_name]
        raise BadRequest(
            f"Expected sheet number {sheet_name} (counting from 0) in the XLSX file, got "
            f"{len(sheets)} sheet(s): {names}. Set data.sheet_name to one of them."
        )
    for sheet in sheets:
        if sheet.title == str(sheet_name):
            return sheet
    raise BadRequest(
        f"Expected a sheet named {str(sheet_name)!r} in the XLSX file, got the sheets {names}. "
        "Set data.sheet_name to one of them."
    )


def sheet_extent(
    source: Any, max_cells: int | None, what: str = "an XLSX sheet"
) -> tuple[int, int]:
    """(rows, columns) that openpyxl, and so pandas, will walk through for a worksheet's XML:
    the last row and the last column of any ``<row>`` or ``<c>`` present, numbered as openpyxl
    numbers them (``r`` attributes, else one after the previous). The ``<dimension>`` header is
    not trusted. Streams the XML, and is a 413 as soon as the extent, or the number of
    elements, passes ``max_cells``."""
    max_cells = _cap(max_cells)
    row = col = rows = cols = seen = 0
    columns: dict[str, int] = {}

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal row, col, rows, cols, seen
        if name == "c" or name.endswith(":c"):
            ref = attrs.get("r")
            if ref:
                letters = _LETTERS.match(ref)
                key = letters.group(1) if letters else ""
                number = columns.get(key)
                if number is None:
                    number = _column(key)
                    if len(columns) < 20_000:  # Excel has 16,384 columns
                        columns[key] = number
                col = number or col + 1
            else:
                col += 1
        elif name == "row" or name.endswith(":row"):
            ref = attrs.get("r")
            row = _row_number(ref) if ref else row + 1
            col = 0
        else:
            return
        rows = max(rows, row)
        cols = max(cols, col)
        seen += 1
        # an empty row still costs a step: count it as one column wide
        if rows * max(cols, 1) > max_cells or seen > 2 * max_cells:
            raise _Over

    def no_dtd(*_: Any) -> None:
        raise BadRequest(
            "Expected an XLSX worksheet of plain XML, got one with a document type "
            "declaration (DTD), which spreadsheets never write. Save the file again."
        )

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.StartDoctypeDeclHandler = no_dtd
    parser.EntityDeclHandler = no_dtd
    try:
        while chunk := source.read(_CHUNK):
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except _Over:
        if rows * max(cols, 1) > max_cells:
            raise too_many_cells(rows, max(cols, 1), max_cells, what, at_least=True) from None
        raise PayloadTooLarge(
            f"Expected a table of at most {max_cells:,} cells (rows x columns), got {what} "
            f"with more than {2 * max_cells:,} rows and cells in its XML. Save it again from a "
            "spreadsheet program, or ask the server's administrator to raise "
            "MLWidgetApp.max_table_cells."
        ) from None
    except expat.ExpatError as exc:
        raise BadRequest(
            f"Expected a valid XLSX table, but its worksheet is not valid XML ({exc}). "
            "Check the file and try again."
        ) from None
    return rows, cols


class _Over(Exception):
    """The extent passed the ceiling: stop reading."""


def _row_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)  # openpyxl accepts "5.0"
        except ValueError:
            number = 0.5
        if number.is_integer():
            return int(number)
        raise BadRequest(
            f"Expected a valid XLSX table, but a row number in its worksheet is {text[:20]!r}. "
            "Check the file and try again."
        ) from None


def _column(letters: str) -> int:
    """A column's number from its letters (A=1); 0 for none."""
    number = 0
    for char in letters.upper()[:8]:  # 8 letters already pass any ceiling
        number = number * 26 + ord(char) - 64
    return number


# ---------------------------------------------------------------------------------- Parquet


def read_parquet(content: bytes, max_cells: int | None) -> pd.DataFrame:
    """A Parquet table, after checking from its metadata that it fits in ``max_cells``, that
    no column holds lists, structs or maps, and that its pages unpack, and its text columns
    decode, to a bounded size (a text repeated through a dictionary decodes to its length
    times the rows; its dictionary-encoded form is read to measure that)."""
    import pyarrow.parquet as pq

    max_cells = _cap(max_cells)
    meta = pq.ParquetFile(io.BytesIO(content))
    rows, columns = meta.metadata.num_rows, meta.metadata.num_columns
    if rows * columns > max_cells:
        raise too_many_cells(rows, columns, max_cells, "a Parquet table")
    nested = [field.name for field in meta.schema_arrow if _is_nested(field.type)]
    if nested:
        raise nested_error(nested, None)
    # Linear in the body (as a CSV of the same text would be): 346 KB of dictionary-encoded
    # text that decodes to 3 GB is refused.
    budget = XLSX_MIN_UNPACKED + PARQUET_MAX_EXPANSION * len(content)
    groups = [meta.metadata.row_group(i) for i in range(meta.metadata.num_row_groups)]
    unpacked = sum(g.column(j).total_uncompressed_size for g in groups for j in range(columns))
    text = [field.name for field in meta.schema_arrow if _is_text(field.type)]
    decoded = _decoded_text_bytes(content, text, budget) if unpacked <= budget else 0
    if max(unpacked, decoded) > budget:
        raise PayloadTooLarge(
            f"Expected a Parquet file whose data unpacks to at most {_size(budget)}, got one of "
            f"{_size(len(content))} that unpacks to at least {_size(max(unpacked, decoded))}. "
            "Send a smaller table, or ask the "
            "server's administrator to raise MLWidgetApp.max_table_cells."
        )
    return pd.read_parquet(io.BytesIO(content))


def _decoded_text_bytes(content: bytes, names: list[str], budget: int) -> int:
    """How many bytes the text columns decode to, read one row group at a time in their
    dictionary-encoded form (each distinct text once); stops past ``budget``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not names:
        return 0
    source = pq.ParquetFile(io.BytesIO(content), read_dictionary=names)
    total = 0
    for i in range(source.num_row_groups):
        for column in source.read_row_group(i, columns=names).columns:
            for chunk in column.chunks:
                if pa.types.is_dictionary(chunk.type):
                    lengths = pc.binary_length(chunk.dictionary)
                    total += pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0
                else:
                    total += chunk.nbytes
        if total > budget:
            break
    return total


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        return False  # read back as a dictionary (Categorical): each text once
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def _is_nested(kind: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_nested(kind)


# ------------------------------------------------------------------------- scalar cells only

_SCALAR_KINDS = {
    "string", "bytes", "floating", "integer", "mixed-integer-float", "decimal", "complex",
    "categorical", "boolean", "datetime64", "datetime", "date", "timedelta64", "timedelta",
    "time", "period", "interval", "empty",
}  # fmt: skip


def _nested_value(value: Any) -> bool:
    import numpy as np

    return isinstance(value, list | tuple | set | frozenset | Mapping | np.ndarray) or (
        isinstance(value, pd.Series | pd.DataFrame)
    )


def require_scalar_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame, if every cell holds one value; else a 400 naming the columns with lists or
    objects (from JSON arrays and objects, or Parquet list and struct columns)."""
    nested: list[str] = []
    example = None
    for i, dtype in enumerate(frame.dtypes):
        if not pd.api.types.is_object_dtype(dtype):
            continue
        column = frame.iloc[:, i]
        if pd.api.types.infer_dtype(column, skipna=True) in _SCALAR_KINDS:
            continue
        found = next((v for v in column if _nested_value(v)), None)
        if found is not None:
            nested.append(str(frame.columns[i]))
            example = found if example is None else example
    if nested:
        raise nested_error(nested, example)
    return frame


def nested_error(columns: list[str], example: Any) -> BadRequest:
    shown = ", ".join(map(repr, columns[:10])) + (" ..." if len(columns) > 10 else "")
    sample = ""
    if example is not None:
        text = repr(example.tolist() if hasattr(example, "tolist") else example)
        sample = f" (e.g. {text[:60]}{'...' if len(text) > 60 else ''})"
    return BadRequest(
        f"Expected a table with one value in each cell, got lists or objects in column(s) "
        f"{shown}{sample}. Flatten them into columns of their own, or send them as text."
    )
