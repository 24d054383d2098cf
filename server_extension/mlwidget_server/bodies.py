"""Request bodies and answers: a POST body as one table, a PUT's changes (through the request
allow-list), JSON answers with numpy values and NaN handled, and bounded error text. No
handler state here: each function takes bytes and arguments, so it runs on a worker thread."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tornado.httputil import parse_body_arguments, parse_qs_bytes

from mlwidget import BadRequest
from mlwidget.api import GENERIC_TYPES, JUPYTER_KEYS
from mlwidget.errors import UnsupportedFormat
from mlwidget.jsonable import dumps, to_jsonable
from mlwidget.options import LIST_OPTIONS, from_request

if TYPE_CHECKING:
    import pandas as pd


def put_changes(body: bytes, query: dict[str, list[str]]) -> dict[str, Any]:
    """A PUT's changes: its flat JSON object body, then its query keys; checked by the
    request allow-list (403 for anything naming a server file, at any depth)."""
    changes: dict[str, Any] = {}
    if body.strip():
        try:
            obj = json.loads(body)
        except ValueError as exc:
            raise BadRequest(
                f"The PUT body is not valid JSON ({exc}). Send a flat JSON object such as "
                '{"class": "RandomForestClassifier", "n_estimators": 10}, or use the query.'
            ) from None
        if not isinstance(obj, dict):
            raise BadRequest(
                f"The PUT body must be a JSON object of options and parameters, "
                f"not a {type(obj).__name__}."
            )
        changes.update(obj)
    for key, values in query.items():
        if not key.startswith("_"):
            changes[key] = values if len(values) > 1 else values[0]
    for key in LIST_OPTIONS:
        if isinstance(changes.get(key), str):
            changes[key] = [changes[key]] if changes[key] else []
    return from_request(changes)


def clip(message: str, limit: int = 2000) -> str:
    """An error message of bounded size: what arrived is quoted, but never all of a huge value."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... ({len(message):,} characters in all; the rest is not shown)"


def last(args: dict[str, list[str]], key: str) -> str | None:
    values = args.get(key)
    return values[-1] if values else None


def parse_body(body: bytes, content_type: str, args: dict[str, list[str]]) -> pd.DataFrame | None:
    """The request body as one table (None if it carries none). Multipart form fields, and the
    fields of a urlencoded form, are added to ``args``."""
    from mlwidget.tables import read_table

    if not body.strip():
        return None
    main = content_type.split(";")[0].strip().lower()
    if main == "multipart/form-data":
        fields: dict[str, list[bytes]] = {}
        files: dict[str, list[Any]] = {}
        try:
            parse_body_arguments(content_type, body, fields, files)
        except Exception:
            fields, files = {}, {}
        if not fields and not files:
            raise BadRequest(
                "The multipart/form-data body cannot be parsed. Upload files as form fields "
                "(curl -F file=@data.csv) or send the table itself as the body."
            )
        for key, values in fields.items():
            if key not in JUPYTER_KEYS:
                args.setdefault(key, []).extend(v.decode("utf-8", "replace") for v in values)
        tables = [
            read_table(f.body, filename=f.filename or None, content_type=_specific(f.content_type))
            for uploads in files.values()
            for f in uploads
            if f.body
        ]
        if not tables:
            return None
        if len(tables) == 1:
            return tables[0]
        import pandas as pd

        return pd.concat(tables, ignore_index=True)
    if main == "application/x-www-form-urlencoded":
        # curl -d @file sends this type for any file: the content decides. A real form
        # (key=value pairs) only carries arguments.
        try:
            return read_table(body)
        except UnsupportedFormat:
            form = _form_fields(body)
            if not form:
                raise  # neither a table nor a form: never a silent retrain on the stored data
            for key, values in form.items():
                if key not in JUPYTER_KEYS:
                    args.setdefault(key, []).extend(v.decode("utf-8", "replace") for v in values)
            return None
    return read_table(body, content_type=_specific(main))


def _form_fields(body: bytes) -> dict[str, list[bytes]] | None:
    """The fields of a real urlencoded form (printable ``key=value`` pairs joined by ``&``),
    else None: any bytes parse as a form of blank keys, and junk must stay junk."""
    try:
        text = body.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    parts = text.split("&")
    if not all(part.isprintable() and part.partition("=")[0] and "=" in part for part in parts):
        return None
    return parse_qs_bytes(text.encode(), keep_blank_values=True)


def _specific(content_type: str | None) -> str | None:
    main = (content_type or "").split(";")[0].strip().lower()
    return None if main in GENERIC_TYPES else main


def preview(body: bytes, content_type: str, args: dict[str, list[str]]) -> dict[str, Any]:
    """``POST mlhandler/?_action=preview``: what the body's table looks like to the model
    maker (``suggest.inspect``), for ``target_col`` and ``dates`` if given. Nothing is stored."""
    from mlwidget import suggest

    frame = parse_body(body, content_type, args)
    if frame is None or not len(frame.columns):
        raise BadRequest(
            "_action=preview needs a table in the request body: CSV, JSON records, XLSX or "
            "Parquet, or a multipart file upload (curl -F file=@data.csv)."
        )
    target = last(args, "target_col") or last(args, "_target_col") or None
    asked = args.get("dates")  # dates=a&dates=b: those columns; dates= alone: none
    return suggest.inspect(frame, target, None if asked is None else [v for v in asked if v])


def results_json(out: dict[str, Any]) -> dict[str, Any]:
    """``MLModel.predict_results`` as JSON: the table's ``columns`` and ``rows`` (lists, in
    input order; numbers at full precision, missing values null) and the rest as it is."""
    table = out["table"]
    rows = to_jsonable(table.astype(object).to_numpy().tolist())
    return {
        "columns": [str(c) for c in table.columns],
        "rows": rows,
        **{k: to_jsonable(v) for k, v in out.items() if k != "table"},
    }


def table_results(m: Any, frame: pd.DataFrame, args: dict[str, list[str]]) -> str:
    """``?_format=table[&_proba=true]``: ``m.predict_results`` as JSON text (on a worker)."""
    return dumps(results_json(m.predict_results(frame, proba=wants_flag(args, "_proba"))))


def wants_flag(args: dict[str, list[str]], key: str) -> bool:
    """A true/false query key (``_proba``): absent is false."""
    value = (last(args, key) or "false").strip().lower()
    if value in ("true", "1", "yes", ""):
        return True
    if value in ("false", "0", "no"):
        return False
    raise BadRequest(f"Expected {key}=true or {key}=false, got {clip(value)!r}.")


def wants_wait(args: dict[str, list[str]]) -> bool:
    """``_wait``: true (the default: answer when the job is done) or false (202 at once)."""
    value = (last(args, "_wait") or "true").strip().lower()
    if value in ("true", "1", "yes", ""):
        return True
    if value in ("false", "0", "no"):
        return False
    raise BadRequest(f"Expected _wait=true or _wait=false, got {clip(value)!r}.")
