"""The monitor's shadow section (``GET ?_monitor``'s ``"shadow"``; docs/monitoring.md): the
shadow version's logged answers (predlog_shadow.py) side by side with the served answers they
copy: how often they agree, each one's latency, and each one's metric on the same labelled
feedback (a label given for a served id counts for its shadow answer too)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import feedback
from .replay_work import agree, score
from .served_numbers import latency


def section(
    served: pd.DataFrame, shadows: pd.DataFrame, labels: pd.DataFrame, kind: str | None
) -> dict[str, Any] | None:
    """The newest shadow version's comparison (None: no shadow answers in the window).
    ``served`` and ``shadows``: log records (predlog_read.read), ``labels``: feedback.latest."""
    if shadows.empty:
        return None
    version = int(shadows.sort_values("time", kind="stable")["version"].tolist()[-1])
    mine = shadows[shadows["version"] == version]
    pairs = mine.merge(
        served[["id", "version", "prediction", "latency_ms"]],
        left_on="shadow_of", right_on="id", suffixes=("", "_served"),
    )  # fmt: skip
    answers = {
        "serving": feedback.parsed(pairs["prediction_served"]),
        "candidate": feedback.parsed(pairs["prediction"]),
    }
    rows = len(pairs)
    same = agree(answers["serving"], answers["candidate"], kind)
    actuals = feedback.actuals(labels)
    actual = [actuals.get(str(i)) for i in pairs["shadow_of"]]
    labelled = [i for i, a in enumerate(actual) if a is not None]
    metric, sides = score(kind, answers, actual, labelled)
    counts = pairs["version_served"].dropna().astype(int).value_counts()
    serving_version = int(counts.index[0]) if len(counts) else None
    return {
        "version": version,
        "serving_version": serving_version,
        "rows": rows,
        "agree": int(same.sum()),
        "agreement": round(float(same.mean()), 6) if rows else None,
        "metric": metric,
        "labelled": len(labelled),
        "serving": {
            "version": serving_version,
            **sides["serving"],
            "latency_ms": latency(pairs["latency_ms_served"]),
        },
        "candidate": {
            "version": version,
            **sides["candidate"],
            "latency_ms": latency(mine["latency_ms"]),
        },
    }
