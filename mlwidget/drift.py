"""Drift of one column of live traffic against the training data (docs/monitoring.md): the
population stability index (PSI) on categories, or on numbers binned at the training data's
deciles, and, for numbers, scipy's two-sample Kolmogorov-Smirnov test. A missing value is a
category (and a bin) of its own.

Thresholds: a column warns when both sides have at least ``MIN_ROWS`` values and its PSI is
over ``PSI_WARN`` (0.2: the usual "significant shift"; 0.1 to 0.2 is "moderate"), or the KS
test rejects at ``KS_P`` (p < 0.01) with a statistic of at least ``KS_STAT`` (0.1: a visible
difference, so that a very large sample does not warn about a negligible one).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

PSI_WARN = 0.2
PSI_MODERATE = 0.1
KS_P = 0.01
KS_STAT = 0.1
MIN_ROWS = 50
BINS = 10  # numbers: bins at the training data's deciles
EPS = 1e-4  # a share of 0 counts as this much (PSI divides by shares)
MISSING = "(missing)"
TOP = 20  # categories shown (by share); the rest are summed as "(other)"
THRESHOLDS = {
    "psi": PSI_WARN,
    "psi_moderate": PSI_MODERATE,
    "ks_p": KS_P,
    "ks_statistic": KS_STAT,
    "min_rows": MIN_ROWS,
    "bins": BINS,
}


def number(value: Any, digits: int = 6) -> float | None:
    """A finite float, rounded, or None (JSON has no NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return round(value, digits) if math.isfinite(value) else None


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of two share vectors over the same bins: sum((a - e) * ln(a / e))."""
    e = np.clip(np.asarray(expected, dtype=float), EPS, None)
    a = np.clip(np.asarray(actual, dtype=float), EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def key(value: Any) -> str:
    """A category's name as both sides spell it: 3 and 3.0 are both ``"3"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return MISSING
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
    return str(value)


def shares(values: pd.Series) -> pd.Series:
    """The share of each category (by its key) among ``values``: counted first, then keyed, so
    a million rows of a few categories call :func:`key` a few times."""
    counts = values.astype(object).value_counts(dropna=False)
    keyed = counts.groupby([key(v) for v in counts.index], sort=False).sum()
    total = keyed.sum()
    return keyed / total if total else keyed.astype(float)


def categories(training: pd.Series, live: pd.Series) -> dict[str, Any]:
    """Shares of each category on both sides and their PSI."""
    train = shares(training)
    now = shares(live)
    names = list(dict.fromkeys([*train.index, *now.index]))
    e = np.array([train.get(n, 0.0) for n in names])
    a = np.array([now.get(n, 0.0) for n in names])
    order = np.argsort(-(e + a), kind="stable")
    shown = [
        {"value": names[i], "training": number(e[i]), "live": number(a[i])} for i in order[:TOP]
    ]
    if len(names) > TOP:
        rest = order[TOP:]
        other = {"training": number(e[rest].sum()), "live": number(a[rest].sum())}
        shown.append({"value": "(other)", **other})
    return {"psi": psi(e, a), "categories": shown}


def numbers(training: pd.Series, live: pd.Series) -> dict[str, Any]:
    """Shares of the training deciles' bins (and of missing values) on both sides, their
    PSI, and the KS test of the values."""
    train = pd.to_numeric(training, errors="coerce").astype(float).to_numpy()
    now = pd.to_numeric(live, errors="coerce").astype(float).to_numpy()
    known = train[~np.isnan(train)]
    edges = np.zeros(0)
    if known.size:
        edges = np.unique(np.quantile(known, np.linspace(0, 1, BINS + 1))[1:-1]).astype(float)

    def shares(values: np.ndarray) -> np.ndarray:
        if not values.size:
            return np.zeros(len(edges) + 2)
        missing = np.isnan(values)
        bins = np.searchsorted(edges, values[~missing], side="right")
        counts = np.bincount(bins, minlength=len(edges) + 1).astype(float)
        return np.append(counts, missing.sum()) / values.size

    e, a = shares(train), shares(now)
    bounds = [-math.inf, *edges.tolist(), math.inf]
    bins = [
        {"from": number(bounds[i]), "to": number(bounds[i + 1]), "training": number(e[i]),
         "live": number(a[i])}
        for i in range(len(bounds) - 1)
    ]  # fmt: skip
    bins.append({"from": None, "to": None, "missing": True, "training": number(e[-1]),
                 "live": number(a[-1])})  # fmt: skip
    out: dict[str, Any] = {"psi": psi(e, a), "bins": bins, "ks_statistic": None, "ks_p": None}
    values = now[~np.isnan(now)]
    if known.size and values.size:
        from scipy.stats import ks_2samp

        test = ks_2samp(known, values)
        out["ks_statistic"], out["ks_p"] = float(test.statistic), float(test.pvalue)
    out["training_summary"], out["live_summary"] = summary(known), summary(values)
    return out


def summary(values: np.ndarray) -> dict[str, Any]:
    if not values.size:
        return {"count": 0, "mean": None, "std": None, "quantiles": None}
    q = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {
        "count": int(values.size),
        "mean": number(values.mean()),
        "std": number(values.std()),
        "quantiles": dict(zip(("p5", "p25", "p50", "p75", "p95"), map(number, q), strict=True)),
    }


def compare(training: pd.Series, live: pd.Series, numeric: bool) -> dict[str, Any]:
    """One column's drift: ``{"kind", "rows", "training_rows", "psi", "level", "ks_statistic",
    "ks_p", "warning", "reasons", ...shares}``."""
    out: dict[str, Any] = {"kind": "number" if numeric else "category"}
    out["rows"], out["training_rows"] = int(len(live)), int(len(training))
    found = numbers(training, live) if numeric else categories(training, live)
    out.update(found)
    value = found["psi"]
    out["psi"] = number(value)
    out["level"] = "shift" if value > PSI_WARN else "moderate" if value > PSI_MODERATE else "stable"
    out.setdefault("ks_statistic", None)
    out.setdefault("ks_p", None)
    out["ks_statistic"], out["ks_p"] = number(out["ks_statistic"]), number(out["ks_p"], 12)
    enough = len(live) >= MIN_ROWS and len(training) >= MIN_ROWS
    reasons = []
    if enough and value > PSI_WARN:
        reasons.append(f"PSI {value:.3f} > {PSI_WARN}")
    p, d = out["ks_p"], out["ks_statistic"]
    if enough and p is not None and d is not None and p < KS_P and d >= KS_STAT:
        reasons.append(f"KS p = {p:.2g} < {KS_P} (statistic {d:.3f} >= {KS_STAT})")
    out["enough_rows"], out["warning"], out["reasons"] = enough, bool(reasons), reasons
    return out
