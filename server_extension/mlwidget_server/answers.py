"""The MLHandler API's answers in a chosen ``_format``: a table (the training data, predictions
with their rows, a job's stored answer) as JSON records or a file (csv, xlsx, parquet, ...),
predictions as JSON or ``_format=table``, and ``?_download`` of a model file (joblib or an
MLflow zip). Each takes the handler it answers for; the work runs on the registry's threads."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mlwidget import BadRequest
from mlwidget.api import CACHE_FORMATS, PREDICT_FORMATS

from . import bodies, predlog_api
from .bodies import last

if TYPE_CHECKING:
    import pandas as pd

    from mlwidget import MLModel

    from .base import BaseHandler


async def send_table(handler: BaseHandler, df: pd.DataFrame, fmt: str, stem: str) -> None:
    """``df`` as JSON records (``json``, ``records``), else as a ``{stem}.{ext}`` file."""
    if fmt in ("json", "records"):
        text = await handler.registry.run(lambda: df.to_json(orient="records", date_format="iso"))
        handler.finish(text)
        return
    if fmt not in CACHE_FORMATS:
        raise BadRequest(f"Unknown _format {fmt!r}. Use {', '.join(CACHE_FORMATS)}.")
    from mlwidget.tables import to_bytes

    data, mime, ext = await handler.registry.run(to_bytes, df, fmt)
    handler.send_file(data, mime, f"{stem}.{ext.lstrip('.')}")


async def send_predictions(
    handler: BaseHandler,
    m: MLModel,
    df: pd.DataFrame,
    fmt: str | None,
    face: str = "post",
    started: float | None = None,
) -> None:
    """The predictions of ``df``: JSON (the default), ``_format=table`` (the rows, their
    predictions and how right they are), or the rows with predictions as a file. JSON and
    file answers are logged as ``face`` (predlog_api.py; ``started``: when it began)."""
    run = handler.registry.run
    started = time.perf_counter() if started is None else started
    if fmt in (None, "", "json"):
        out = await run(m.predict, df)
        predlog_api.mark(handler, m, face, df, out, started)
        await handler.send_json(out)
        return
    if fmt not in PREDICT_FORMATS:
        raise BadRequest(
            f"Unknown _format {fmt!r} for predictions. Use {', '.join(PREDICT_FORMATS)}."
        )
    if fmt == "table":  # the input, the predictions and how right they are, as JSON
        handler.finish(await run(bodies.table_results, m, df, handler.query_args()))
        return
    table = await run(m.predict_table, df)
    column = m.target_col or "prediction"  # where predict_table puts them (not a transformer)
    if column in table.columns:
        predlog_api.mark(handler, m, face, df, table[column].tolist(), started)
    await send_table(handler, table, fmt, f"{m.name}-predictions")


async def send_download(handler: BaseHandler, m: MLModel, args: dict[str, list[str]]) -> None:
    """``GET ?_download[&version=N][&_format=joblib|mlflow]``: the model file as an attachment."""
    run = handler.registry.run
    fmt, version = last(args, "_format"), last(args, "version")
    if fmt == "mlflow":
        zipped = await run(m.export_zip, "mlflow", version)
        handler.send_file(zipped, "application/zip", f"{file_stem(m, version)}-mlflow.zip")
        return
    if fmt not in (None, "", "joblib"):
        raise BadRequest(f"Unknown _format {fmt!r} for _download: use joblib or mlflow.")
    data = await run(m.model_bytes, version)
    handler.send_file(data, "application/octet-stream", f"{file_stem(m, version)}.joblib")


def file_stem(m: MLModel, version: str | None) -> str:
    """A download's name: the model's, with the version asked for (checked by the core)."""
    return f"{m.name}-v{int(version)}" if version else m.name
