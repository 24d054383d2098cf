"""The monitor (``GET ?_monitor``, ``MLModel.monitor``; docs/monitoring.md): what a model was
asked and how it did, from its prediction log, its feedback and its training data.

:func:`monitor` is a pure function of those three tables (and the model's schema, kind and
target): traffic and latency per version over time, the predictions' distribution against the
training target's, the live metric on labelled feedback per version, and drift per feature
against the training data (drift.py: PSI and KS, with a warning past the documented
thresholds). :func:`report` reads the tables for a model and calls it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from . import drift, feedback, monitor_shadow, predlog_read, predlog_rows, served_numbers
from .errors import BadRequest
from .snapshot import Snapshot

# The width of the traffic buckets: the smallest of these that gives at most MAX_BUCKETS.
WIDTHS = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
MAX_BUCKETS = 100


def parse(args: Mapping[str, Any]) -> predlog_read.Filters:
    """``since``, ``until``, ``version`` and ``limit`` of a ``?_monitor`` query (as ``?_log``
    reads them; ``limit`` defaults to the most, 1,000,000), or a 400 naming the wrong one."""
    fmt = args.get("_format")
    fmt = fmt[-1] if isinstance(fmt, list | tuple) and fmt else fmt
    if fmt not in (None, "", "json"):
        raise BadRequest(f"Expected _format=json (or none) with ?_monitor, got {str(fmt)[:40]!r}.")
    filters = predlog_read.parse_filters({k: v for k, v in args.items() if k != "_format"})
    if not args.get("limit"):
        filters = filters._replace(limit=predlog_read.MAX_LIMIT)
    return filters


def report(model: Any, filters: predlog_read.Filters = predlog_read.Filters()) -> dict[str, Any]:
    """The monitor of ``model`` (an MLModel) over the log records that pass ``filters``."""
    snap = model.snapshot()
    log = predlog_read.read(model, filters)
    training = model.repo.read(Snapshot.data)
    labels = feedback.latest(feedback.read(snap.folder))
    if len(labels):
        labels = filters.select(labels, "predicted_at")
    fitted = snap.fitted or {}
    answer = monitor(
        log, training, labels, snap.schema, fitted.get("kind"), snap.options.get("target_col")
    )
    window = {
        "since": None if filters.since is None else stamp(filters.since),
        "until": None if filters.until is None else stamp(filters.until),
        "version": filters.version,
    }
    return {"name": model.name, **window, **answer}


def monitor(
    log: pd.DataFrame,
    training: pd.DataFrame | None,
    labels: pd.DataFrame,
    schema: Sequence[Mapping[str, Any]],
    kind: str | None,
    target: str | None,
) -> dict[str, Any]:
    """The monitor's answer: ``log`` as predlog_read.read gives it, ``training`` the stored
    training data (or None), ``labels`` feedback.latest() of the feedback."""
    notes = []
    if log.empty:
        notes.append("No logged predictions in this window (is log_predictions on?).")
    if training is None:
        notes.append(
            "No training data is stored: drift and the training distribution are not known."
        )
    shadows = log[log["shadow_of"].notna()]  # a shadow version's copies (predlog_shadow.py)
    log = log[log["shadow_of"].isna()].reset_index(drop=True)
    inputs = predlog_rows.inputs_frame(log["input"])
    features = []
    for f in schema:
        name = str(f["name"])
        item: dict[str, Any] = {"feature": name}
        live = inputs[name] if name in inputs.columns else pd.Series([None] * len(log))
        if training is not None and name in training.columns:
            item.update(drift.compare(training[name], live, f.get("kind") == "number"))
        else:
            item.update(rows=len(log), warning=False, reasons=[], note="not in the training data")
        features.append(item)
    predictions = distribution(log, training, kind, target)
    warnings = [f"{f['feature']}: {'; '.join(f['reasons'])}" for f in features if f["warning"]]
    if predictions.get("warning"):
        warnings.insert(0, f"predictions: {'; '.join(predictions['reasons'])}")
    buckets, width = traffic(log)
    return {
        "records": len(log),
        "thresholds": drift.THRESHOLDS,
        "bucket_seconds": width,
        "traffic": buckets,
        "versions": versions(log),
        "predictions": predictions,
        "feedback": live_metrics(labels, kind),
        "drift": features,
        "shadow": monitor_shadow.section(log, shadows, labels, kind),
        "warnings": warnings,
        "notes": notes,
    }


def stamp(value: Any) -> str:
    """A time as the log writes it: ISO 8601, UTC, milliseconds."""
    return pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _version(value: Any) -> int | None:
    """A group's version (-1 stands for none)."""
    number = int(value)
    return None if number == -1 else number


def traffic(log: pd.DataFrame) -> tuple[list[dict[str, Any]], int]:
    """Rows and latency per version per time bucket (bucket width in seconds)."""
    if log.empty:
        return [], WIDTHS[0]
    span = (log["time"].max() - log["time"].min()).total_seconds()
    width = next((w for w in WIDTHS if span / w < MAX_BUCKETS), WIDTHS[-1])
    frame = log.assign(bucket=log["time"].dt.floor(f"{width}s"), v=log["version"].fillna(-1))
    out = []
    for (start, version), group in frame.groupby(["bucket", "v"], sort=True):
        out.append(
            {
                "time": stamp(start),
                "version": _version(version),
                "count": len(group),
                "latency_ms": served_numbers.latency(group["latency_ms"]),
            }
        )
    return out, width


def versions(log: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows, first and last time and latency per version that answered."""
    out = []
    frame = log.assign(v=log["version"].fillna(-1))
    for version, group in frame.groupby("v", sort=True):
        out.append(
            {
                "version": _version(version),
                "count": len(group),
                "first": stamp(group["time"].min()),
                "last": stamp(group["time"].max()),
                "latency_ms": served_numbers.latency(group["latency_ms"]),
            }
        )
    return out


def distribution(
    log: pd.DataFrame, training: pd.DataFrame | None, kind: str | None, target: str | None
) -> dict[str, Any]:
    """The predictions against the training data's target: class shares (a classifier) or
    binned values (a regressor), with their PSI (and KS) as for a feature."""
    live = pd.Series(feedback.parsed(log["prediction"]), dtype=object)
    if training is None or not target or target not in training.columns or kind is None:
        return {"rows": len(log), "warning": False, "reasons": [], "note": "no training target"}
    numeric = kind == "regressor"
    if numeric:
        live = pd.to_numeric(live, errors="coerce")
    return drift.compare(training[target], live, numeric)


def live_metrics(labels: pd.DataFrame, kind: str | None) -> list[dict[str, Any]]:
    """Per version answering: the feedback it got and its metric on it. A classifier's
    ``accuracy`` counts a labelled row right when the prediction equals the actual, and a
    flagged row as its flag says; a regressor's ``r2`` and ``mae`` use the labelled rows."""
    out = []
    for version, group in labels.assign(v=labels["version"].fillna(-1)).groupby("v", sort=True):
        predicted = feedback.parsed(group["prediction"])
        actual = feedback.parsed(group["actual"])
        has = [isinstance(a, str) and a != "" for a in group["actual"]]
        flags = [f if isinstance(f, str) else None for f in group["flag"]]
        item: dict[str, Any] = {
            "version": _version(version),
            "feedback": len(group),
            "labelled": sum(has),
            "flagged": sum(f is not None for f in flags),
            "wrong_flags": sum(f == "wrong" for f in flags),
        }
        if kind == "classifier":
            right = [
                drift.key(p) == drift.key(a) if h else (f == "right" if f else None)
                for p, a, h, f in zip(predicted, actual, has, flags, strict=True)
            ]
            known = [r for r in right if r is not None]
            item.update(metric="accuracy", rows=len(known))
            item["accuracy"] = drift.number(sum(known) / len(known)) if known else None
            item["value"] = item["accuracy"]
        elif kind == "regressor":
            pairs = [(p, a) for p, a, h in zip(predicted, actual, has, strict=True) if h]
            item.update(metric="r2", rows=len(pairs), **served_numbers.regression(pairs))
            item["value"] = item["r2"]
        out.append(item)
    return out
