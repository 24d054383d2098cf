"""Reading and deleting a model's feedback (``GET ?_feedback``, ``DELETE ?_feedback``;
``MLModel``-free: they take the model for its folder). The records are those feedback.py
writes, one per item given: a prediction id given feedback twice has two records (the monitor
and the appends count the latest of each)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import feedback
from .predlog_read import Filters, iso_times, whole_or_none


def read(model: Any, filters: Filters = Filters()) -> pd.DataFrame:
    """The feedback records ``filters`` keep (``since`` and ``until``: when the feedback was
    given; ``version``: the version that made the prediction), oldest first: the newest
    ``limit`` of them."""
    frame = feedback.read(model.snapshot().folder)
    frame = filters.select(frame).sort_values(["time", "seq"], kind="stable")
    return frame.tail(filters.limit).reset_index(drop=True)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The JSON answer: one object per record, its JSON fields parsed, times in ISO 8601."""

    given, predicted = iso_times(frame["time"]), iso_times(frame["predicted_at"])
    versions = whole_or_none(frame["version"])
    texts = {c: feedback.parsed(frame[c]) for c in ("actual", "prediction", "input")}
    return [
        {
            "id": str(frame["id"].iat[i]),
            "time": given[i],
            "caller": _text(frame["caller"].iat[i]),
            "actual": texts["actual"][i],
            "flag": _text(frame["flag"].iat[i]),
            "note": _text(frame["note"].iat[i]),
            "version": versions[i],
            "predicted_at": predicted[i],
            "prediction": texts["prediction"][i],
            "input": texts["input"][i],
        }
        for i in range(len(frame))
    ]


def flat(frame: pd.DataFrame) -> pd.DataFrame:
    """The table a file answer holds (csv, parquet): the JSON fields as JSON text."""
    out = frame.drop(columns=["seq"])
    out["version"] = out["version"].astype("Int64")
    return out


def delete(model: Any) -> dict[str, Any]:
    """Remove every feedback record of the model (the labels already appended to its training
    data stay there); Gramex-style idempotent answer."""
    gone = feedback.remove_all(model.snapshot().folder)
    return {
        "name": model.name,
        "deleted": ["feedback"] if gone else [],
        "absent": [] if gone else ["feedback"],
        "segments": gone,
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
