"""Large tables in pieces: a CSV file read a chunk of rows at a time, and predictions made chunk
by chunk from one version of a model, so that memory stays bounded by a chunk, not the file.

``MLModel.predict`` takes such chunks (``pd.read_csv(path, chunksize=100_000)``, or
``csv_chunks`` here); the server streams large CSV bodies through them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import pandas as pd

from . import limits
from .errors import BadRequest, MLWidgetError, PayloadTooLarge
from .tables import csv_delimiter

# Rows per chunk: large enough that per-chunk costs vanish, small enough to bound memory
# (50k Titanic rows are a few MB parsed).
CHUNK_ROWS = 50_000
_ROW = re.compile(r"\(row (\d+)\)")


def is_chunks(data: Any) -> bool:
    """True for an iterator of tables (``pd.read_csv(..., chunksize=)`` or a generator)."""
    return isinstance(data, Iterator) or type(data).__name__ == "TextFileReader"


def csv_chunks(
    source: IO[bytes],
    rows: int | None = None,
    max_cells: int | None = None,
) -> Iterator[pd.DataFrame]:
    """The CSV in ``source`` (a binary file positioned at its start) as DataFrames of ``rows``
    rows (default ``CHUNK_ROWS``). The whole table is held to ``max_cells`` (rows x columns,
    default ``max_table_cells`` of ``limits.current()``) as it is read: 413 past it. A parse error is a 400 naming the
    line, as for a whole body."""
    max_cells = limits.current().max_table_cells if max_cells is None else max_cells
    rows = rows or CHUNK_ROWS
    head = source.read(64 * 1024)
    source.seek(0)
    if not head.strip():
        raise BadRequest("Expected a table, got an empty CSV body. Send a header row and data.")
    sep = csv_delimiter(head)
    try:
        reader = pd.read_csv(source, sep=sep, chunksize=rows)
        seen = 0
        for frame in reader:
            seen += len(frame)
            if seen * frame.shape[1] > max_cells:
                raise PayloadTooLarge(
                    f"The CSV table has more than {max_cells:,} cells (rows x columns; over "
                    f"{seen:,} rows of {frame.shape[1]} columns): the most this server reads is "
                    f"{max_cells:,} (MLWidgetApp.max_table_cells). Send fewer rows at a time."
                )
            yield frame
    except MLWidgetError:
        raise
    except Exception as exc:
        raise _unreadable(exc) from None


def _unreadable(exc: Exception) -> BadRequest:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return BadRequest(
        f"Expected a valid CSV table, but it could not be read: {reason[:200]}. "
        "Check the file and try again."
    )


def predict_parts(
    predict: Callable[[pd.DataFrame], list[Any]],
    chunks: Iterable[pd.DataFrame],
    convert: Callable[[list[Any]], Any] | None = None,
) -> list[Any]:
    """``predict`` of each chunk, in order: a list with one entry per chunk (``convert`` of its
    predictions, e.g. their JSON text, else the predictions). Every chunk is predicted before
    anything is returned, so an error in the last row still leaves nothing half-answered."""
    out, start = [], 0
    for frame in chunks:
        if not isinstance(frame, pd.DataFrame):
            raise BadRequest(
                f"Expected chunks of rows as DataFrames (pd.read_csv(..., chunksize=...)), got "
                f"a {type(frame).__name__}."
            )
        try:
            preds = predict(frame) if len(frame) else []
        except BadRequest as exc:  # "(row 3)" of this chunk is row start + 3 of the table
            raise BadRequest(_shift_rows(str(exc), start)) from None
        out.append(convert(preds) if convert is not None else preds)
        start += len(frame)
    return out


def _shift_rows(message: str, start: int) -> str:
    """``message`` with each "(row N)" of a chunk renumbered as row ``start + N`` of the table."""
    return _ROW.sub(lambda match: f"(row {start + int(match.group(1))})", message)
