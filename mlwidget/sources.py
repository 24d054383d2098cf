"""Gramex's data sources in server configuration: ``data: {url: ..., ...}``.

Gramex 1.94.5 takes FormHandler-style dicts, ``{url: <file path or SQLAlchemy URL>, ext,
sheet_name, table, query}``. These name server files and databases, so they come only from
server config or Python, never from a request (``options.from_request`` refuses ``data``).
``tables.read_source`` reads files; ``read_sql`` reads databases.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from .errors import BadRequest

# Gramex's data source: {url: file path or SQLAlchemy URL, ext, sheet_name, table, query}.
SOURCE_KEYS = ("url", "ext", "sheet_name", "table", "query")
# Other keys of Gramex data sources (FormHandler, gramex.data.filter and the pandas readers it
# calls, MLHandler's config_dir), accepted and ignored with a warning (source_warnings).
_NO_EFFECT = ("config_dir", "default", "engine", "formats", "id", "keys", "meta", "state")
_NOT_APPLIED = (
    "transform", "function", "args", "kwargs", "modify", "prepare", "queryfunction",
    "queryfile", "columns", "filters", "encoding", "sep", "delimiter", "header", "names",
    "usecols", "index_col", "skiprows", "skipfooter", "nrows", "dtype", "na_values",
    "parse_dates", "thousands", "decimal", "orient", "lines", "converters",
)  # fmt: skip


def is_source(spec: Any) -> bool:
    """Whether a dict is a Gramex data source (``url`` naming a file or a database, and only
    data-source keys) rather than one record. ``{"url": ..., "clicks": 3}`` is a record."""
    return (
        isinstance(spec, Mapping)
        and isinstance(spec.get("url"), str | os.PathLike)
        and all(k in SOURCE_KEYS or k in _NO_EFFECT or k in _NOT_APPLIED for k in spec)
    )


def is_database(url: Any) -> bool:
    return isinstance(url, str) and "://" in url


def source_warnings(spec: Any) -> list[str]:
    """One warning per key of a Gramex data source that mlwidget does not use (empty for
    anything that is not a data source)."""
    if not is_source(spec):
        return []
    database = is_database(spec["url"])
    out = []
    for key in spec:
        if key in _NO_EFFECT:
            out.append(f"data.{key} is a Gramex option with no effect here; it is ignored.")
        elif key in _NOT_APPLIED:
            out.append(
                f"data.{key} is ignored: mlwidget reads the table as the "
                f"{'database' if database else 'file'} holds it, without Gramex's {key}. "
                "Prepare the data (or use data.query) to match instead."
            )
        elif key in ("ext", "sheet_name") and database:
            out.append(f"data.{key} is ignored: it applies to files, and data.url is a database.")
        elif key in ("table", "query") and not database:
            out.append(
                f"data.{key} is ignored: it applies to databases, and data.url is a file path."
            )
        elif key == "table" and database and spec.get("query"):
            out.append("data.table is ignored: data.query is given, and it is what is read.")
    return out


def read_sql(source: Mapping[str, Any]) -> pd.DataFrame:
    """``{url: <SQLAlchemy URL>, table: name}`` or ``{url, query}``."""
    import sqlalchemy as sa

    url = source["url"]  # a database URL (see is_database)
    try:
        engine = sa.create_engine(url)
    except Exception as exc:
        raise BadRequest(
            f"Expected a SQLAlchemy URL in data.url, got one it rejects: {exc}."
        ) from None
    try:
        with engine.connect() as conn:
            if source.get("query"):
                return pd.read_sql_query(sa.text(source["query"]), conn)
            return pd.read_sql_table(source["table"], conn)
    except Exception as exc:
        reason = str(exc).splitlines()[0]
        raise BadRequest(
            f"Could not read the training data from the database: {reason[:200]}."
        ) from None
    finally:
        engine.dispose()
