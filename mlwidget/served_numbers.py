"""Numbers the monitor and the replay report of served answers: latency percentiles, and a
regressor's r2 and MAE on labelled rows (monitoring.py, monitor_shadow.py, replay_work.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .drift import number


def latency(values: pd.Series) -> dict[str, Any]:
    """The mean, median and 95th percentile of latencies in ms (None for no rows)."""
    numbers = values.astype(float).to_numpy()
    if not numbers.size:
        return {"mean": None, "p50": None, "p95": None}
    p50, p95 = np.quantile(numbers, [0.5, 0.95])
    return {
        "mean": number(numbers.mean(), 3),
        "p50": number(p50, 3),
        "p95": number(p95, 3),
    }


def regression(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """r2 (two rows or more) and MAE of ``(predicted, actual)`` pairs."""
    try:
        p = np.array([float(x) for x, _ in pairs])
        a = np.array([float(y) for _, y in pairs])
    except (TypeError, ValueError):
        return {"r2": None, "mae": None}
    if not len(pairs):
        return {"r2": None, "mae": None}
    mae = float(np.abs(p - a).mean())
    r2 = None
    if len(pairs) >= 2:
        from sklearn.metrics import r2_score

        r2 = float(r2_score(a, p))
    return {"r2": number(r2), "mae": number(mae)}
