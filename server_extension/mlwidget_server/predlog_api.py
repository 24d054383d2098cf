"""The prediction log over REST (docs/monitoring.md): ``X-Prediction-Id`` on the answers that
were logged (``mark``), ``GET ?_log`` and ``DELETE ?_log`` (trainer role: mlwidget.access).
The log itself is mlwidget.predlog (the buffer) and mlwidget.predlog_read (the files)."""

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


async def send_log(handler: BaseHandler, m: MLModel, args: dict[str, list[str]]) -> None:
    """``GET ?_log[&since=&until=&version=&limit=][&_format=json|csv|parquet]``."""
    filters = predlog_read.parse_filters(args)
    run = handler.registry.run
    frame = await run(predlog_read.read, m, filters)
    if filters.format == "json":
        await handler.send_json(await run(predlog_read.records, frame))
        return
    from mlwidget.tables import to_bytes

    data, mime, ext = await run(to_bytes, predlog_read.flat(frame), filters.format)
    handler.send_file(data, mime, f"{m.name}-log.{ext.lstrip('.')}")


async def delete_log(handler: BaseHandler, m: MLModel, args: dict[str, list[str]]) -> None:
    """``DELETE ?_log``: alone (nothing else is deleted with it)."""
    others = sorted(k for k in args if k != "_log")
    if others:
        raise BadRequest(
            f"Expected ?_log alone to delete the prediction log, got also {', '.join(others)}. "
            "Delete the log, the model and the data with separate requests."
        )
    await handler.send_json(await handler.registry.run(predlog_read.delete, m))
