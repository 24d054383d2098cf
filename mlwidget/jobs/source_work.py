"""Bulk predictions from a source to an output, where the rows are: the work of a job that
reads a source's partitions, predicts them and writes each partition's answers as Parquet.

``predict_source`` runs the whole job partition by partition (a worker process, a thread);
on Dask, ``predict_source_part`` is one task per partition, spread over the workers, each
reading its partition itself (see ``DaskExecutor``). Either way the rows never pass through the
process that started the job: what comes back is counts and a few preview rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PREVIEW_ROWS = 5  # rows of the answer a job's result shows


def predict_source(payload: dict[str, Any], report: Callable[..., None]) -> dict[str, Any]:
    """Every partition of ``payload["source"]`` predicted and written to its output, in turn."""
    from .. import limits

    parts = payload["parts"]
    rows = 0
    preview: list[Any] = []
    report("predict", 0.0)
    with limits.using(payload.get("limits")):
        snap = model_snapshot(payload["model"])
        for index, part in enumerate(parts):
            count, head = predict_one(snap, payload, index, part)
            rows += count
            if len(preview) < PREVIEW_ROWS:
                preview.extend(head[: PREVIEW_ROWS - len(preview)])
            report("predict", (index + 1) / len(parts))
    return answer(payload, rows, preview)


def predict_source_part(model: dict[str, Any], payload: dict[str, Any], index: int) -> Any:
    """One partition on a Dask worker: ``(rows, preview)``. ``model`` (the serving version's
    state and pipeline) was sent to the worker once for every job of that version."""
    from .. import limits

    with limits.using(payload.get("limits")):
        return predict_one(model_snapshot(model), payload, index, payload["parts"][index])


def model_snapshot(model: dict[str, Any]) -> Any:
    """The snapshot a job's predictions are made with."""
    from ..snapshot import Snapshot

    return Snapshot.detached(model["name"], model["state"], model["pipeline"])


def predict_one(snap: Any, payload: dict[str, Any], index: int, part: Any) -> tuple[int, list]:
    """Read partition ``index``, predict it, write ``part-<index>.parquet`` to the output:
    ``(rows, first rows of the answer as records)``."""
    from .. import datasets, predicting
    from ..jsonable import to_jsonable

    frame = datasets.read_part(payload["source"], part)
    results = predicting.predict_results(
        snap, snap.name, frame, None, proba=bool(payload.get("proba")), scored=False
    )
    table = results["table"]
    keys = payload.get("keys")
    if keys:
        added = [c for c in table.columns if c not in frame.columns]
        table = table[[*keys, *added]]
    datasets.write_part(payload["output"], payload["folder"], index, table)
    head = table.head(PREVIEW_ROWS).to_dict(orient="records")
    return len(table), to_jsonable(head)


def answer(payload: dict[str, Any], rows: int, preview: list[Any]) -> dict[str, Any]:
    """A source job's result: where its answers are, how many, and the first few."""
    return {
        "output": payload["output"].name,
        "folder": payload["folder"],
        "source": payload["source"].name,
        "rows": rows,
        "parts": len(payload["parts"]),
        "preview": preview,
    }
