"""A replay's work, where the job's executor runs it (a worker process, a thread, Dask): the
logged inputs predicted again by the serving version and by a candidate, compared row by row
and on the labelled feedback (replay.py starts it; docs/monitoring.md, "Replay").

Pure of the store: the payload carries both versions (state and pipeline), the log's rows (id,
time, input as JSON text) and the labels by id. The rows where the two answers differ are
written to ``result_path`` when there is one (the differences file ``?_job=ID&_result``
streams), else returned for the server to write (a Dask worker need not see the store).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import drift, limits
from .errors import BadRequest
from .jobs.results import ResultWriter, StoredResult
from .predlog_rows import inputs_frame
from .served_numbers import regression

CHUNK_ROWS = 20_000  # rows predicted between progress reports
PREVIEW_ROWS = 20  # differing rows the summary shows (the file has them all)
FIXED = ("id", "time", "logged_version", "actual", "serving", "candidate")


@dataclass
class Replayed:
    """What the work gives back: the summary, and the differing rows (in a file, or here)."""

    summary: dict[str, Any]
    stored: StoredResult | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def remove(self) -> None:
        """The differences file goes (a replay that did not end well)."""
        if self.stored is not None:
            self.stored.remove()


def replay(payload: dict[str, Any], report: Callable[..., None]) -> Replayed:
    """Predict the logged rows by both versions, then compare them (see module)."""
    with limits.using(payload.get("limits")):
        log: pd.DataFrame = payload["log"]
        frame = inputs_frame(log["input"])
        kind = payload["kind"]
        answers = {}
        for side in ("serving", "candidate"):
            answers[side] = predict(payload[side], payload["name"], frame, side, report)
        report("compare", None)
        same = agree(answers["serving"], answers["candidate"], kind)
        differ = np.flatnonzero(~same)
        labels: Mapping[str, Any] = payload["labels"]
        actual = [labels.get(i) for i in log["id"].tolist()]
        rows = differences(log, frame, answers, actual, differ)
        summary = summarize(payload, log, answers, actual, same, rows[:PREVIEW_ROWS])
        path = payload.get("result_path")
        if not path:
            return Replayed(summary, rows=rows)
        with ResultWriter(path, "records") as writer:
            writer.add(rows)
            return Replayed(summary, stored=writer.close())


def predict(
    side: Mapping[str, Any], name: str, frame: pd.DataFrame, label: str, report: Callable
) -> list[Any]:
    """One version's predictions of every row, in chunks with progress."""
    from . import predicting
    from .snapshot import Snapshot

    snap = Snapshot.detached(name, side["state"], side["pipeline"])
    out: list[Any] = []
    total = len(frame)
    for start in range(0, total, CHUNK_ROWS):
        chunk = frame.iloc[start : start + CHUNK_ROWS].reset_index(drop=True)
        try:
            out += predicting.predict(snap, name, chunk, None)
        except BadRequest as exc:  # a version trained on other features than those logged
            raise BadRequest(
                f"Version {side['version']} of {name!r} cannot answer the logged rows: {exc} "
                "Replay a version trained on the features the log holds."
            ) from None
        report(label, min(1.0, (start + CHUNK_ROWS) / total))
    return out


def agree(serving: list[Any], candidate: list[Any], kind: str | None) -> np.ndarray:
    """Per row, whether the two answers are the same: numbers within a relative 1e-9 for a
    regressor, else equal numbers, or the same value (3 and 3.0 alike, as drift.key says)."""
    a, b = np.asarray(serving, dtype=object), np.asarray(candidate, dtype=object)
    try:
        x, y = a.astype(float), b.astype(float)
    except (TypeError, ValueError):
        return np.array([drift.key(p) == drift.key(q) for p, q in zip(a, b, strict=True)], bool)
    both_nan = np.isnan(x) & np.isnan(y)
    if kind == "regressor":
        return np.isclose(x, y, rtol=1e-9, atol=1e-12) | both_nan
    return (x == y) | both_nan


def differences(
    log: pd.DataFrame,
    frame: pd.DataFrame,
    answers: Mapping[str, list[Any]],
    actual: list[Any],
    differ: np.ndarray,
) -> list[dict[str, Any]]:
    """The differing rows as records: the fixed columns, then the input's features (a feature
    named like a fixed column gets an ``input_`` prefix)."""
    from .jsonable import to_jsonable

    times = log["time"].iloc[differ].dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
    versions = log["version"].iloc[differ].astype("Int64")
    fixed = pd.DataFrame(
        {
            "id": log["id"].iloc[differ].astype(str).to_numpy(),
            "time": times.to_numpy(),
            "logged_version": [None if v is pd.NA else int(v) for v in versions],
            "actual": [actual[i] for i in differ.tolist()],
            "serving": [answers["serving"][i] for i in differ.tolist()],
            "candidate": [answers["candidate"][i] for i in differ.tolist()],
        }
    )
    names = {c: f"input_{c}" if c in FIXED else str(c) for c in frame.columns}
    inputs = frame.iloc[differ].rename(columns=names).reset_index(drop=True)
    table = pd.concat([fixed, inputs], axis=1)
    return to_jsonable(table.astype(object).where(table.notna(), None).to_dict("records"))


def summarize(
    payload: Mapping[str, Any],
    log: pd.DataFrame,
    answers: Mapping[str, list[Any]],
    actual: list[Any],
    same: np.ndarray,
    preview: list[dict[str, Any]],
) -> dict[str, Any]:
    """The replay's answer (docs/monitoring.md): agreement, the metric on the labelled rows
    for both versions, the first differing rows."""
    rows = len(log)
    labelled = [i for i, a in enumerate(actual) if a is not None]
    metric, sides = score(payload["kind"], answers, actual, labelled)
    serving_version, version = payload["serving"]["version"], payload["candidate"]["version"]
    return {
        "name": payload["name"],
        "version": version,
        "serving_version": serving_version,
        "rows": rows,
        "agree": int(same.sum()),
        "differ": int(rows - same.sum()),
        "agreement": drift.number(same.mean()) if rows else None,
        "since": _iso(log["time"].min()) if rows else None,
        "until": _iso(log["time"].max()) if rows else None,
        "metric": metric,
        "labelled": len(labelled),
        "serving": {"version": serving_version, **sides["serving"]},
        "candidate": {"version": version, **sides["candidate"]},
        "differences": preview,
    }


def score(
    kind: str | None, answers: Mapping[str, list[Any]], actual: list[Any], labelled: list[int]
) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """Each version's metric on the labelled rows: accuracy for a classifier, r2 and MAE for
    a regressor (as the monitor's live metric)."""
    sides: dict[str, dict[str, Any]] = {}
    metric = {"classifier": "accuracy", "regressor": "r2"}.get(kind or "")
    for side, predicted in answers.items():
        if kind == "classifier":
            right = [drift.key(predicted[i]) == drift.key(actual[i]) for i in labelled]
            value = drift.number(sum(right) / len(right)) if right else None
            sides[side] = {"value": value}
        elif kind == "regressor":
            found = regression([(predicted[i], actual[i]) for i in labelled])
            sides[side] = {"value": found["r2"], "mae": found["mae"]}
        else:
            sides[side] = {"value": None}
    return metric, sides


def _iso(value: Any) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
