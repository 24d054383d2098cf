"""The prediction log over REST (docs/monitoring.md): ``X-Prediction-Id`` on the answers that
were logged (``mark``), ``GET ?_log`` and ``DELETE ?_log``, and the same two for the feedback
(``?_feedback``; trainer role: mlwidget.access). The log itself is mlwidget.predlog (the
buffer) and mlwidget.predlog_read (the files); the feedback mlwidget.feedback_read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlwidget import BadRequest, predlog, predlog_read

if TYPE_CHECKING:
    from mlwidget import MLModel

    from .base import BaseHandler

HEADER = "X-Prediction-Id"


def mark(
    handler: BaseHandler,
    m: MLModel,
    face: str,
    rows: Any,
    predictions: list[Any] | None,
    started: float,
    proba: list[Any] | None = None,
    kind: str = "frame",
) -> predlog.Logged | None:
    """Log an answer (when the model's options say so) and put its ids in the header."""
    logged = predlog.answered(m, face, rows, predictions, started, proba=proba, kind=kind)
    if logged is not None:
        handler.set_header(HEADER, logged.header())
    return logged


async def send_records(
    handler: BaseHandler, m: MLModel, args: dict[str, list[str]], records: Any, stem: str
) -> None:
    """``GET ?_log`` or ``?_feedback`` (``records``: mlwidget.predlog_read or feedback_read,
    whose ``read``, ``records`` and ``flat`` they share), filtered by ``since``, ``until``,
    ``version`` and ``limit``: JSON, or ``_format=csv|parquet`` as the file
    ``<model>-<stem>.<ext>``."""
    filters = predlog_read.parse_filters(args)
    run = handler.registry.run
    frame = await run(records.read, m, filters)
    if filters.format == "json":
        await handler.send_json(await run(records.records, frame))
        return
    from mlwidget.tables import to_bytes

    data, mime, ext = await run(to_bytes, records.flat(frame), filters.format)
    handler.send_file(data, mime, f"{m.name}-{stem}.{ext.lstrip('.')}")


async def delete_alone(
    handler: BaseHandler, m: MLModel, args: dict[str, list[str]], records: Any, what: str
) -> None:
    """``DELETE ?_log`` or ``?_feedback`` (``what``: log or feedback): ``records.delete(m)``,
    only with that key alone (nothing else is deleted with it)."""
    key = f"_{what}"
    others = sorted(k for k in args if k != key)
    if others:
        raise BadRequest(
            f"Expected ?{key} alone to delete the {what}, got also {', '.join(others)}. "
            "Delete the log, the feedback, the model and the data with separate requests."
        )
    await handler.send_json(await handler.registry.run(records.delete, m))
