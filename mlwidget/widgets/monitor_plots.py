"""The Monitor tab's plots (PNG, drawn on a fresh Agg figure: render.figure_png) of a monitor
answer (``model.monitor()``, docs/monitoring.md): traffic and latency per version over time,
the predictions and a drifting feature against the training data, PSI per feature against its
threshold, and the live metric per version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .monitor_view import num, version_name
from .render import figure_png

TRAINING, LIVE, WARN = "#94a3b8", "#2563eb", "#b42318"
COLORS = ("#2563eb", "#f59e0b", "#10b981", "#8b5cf6", "#ef4444", "#0ea5e9", "#84cc16")
MAX_DETAILS = 6  # distribution plots of drifting features


def _times(values: Sequence[str]) -> Any:
    import pandas as pd

    return pd.to_datetime(list(values), utc=True).tz_localize(None)


def _time_axis(ax: Any, report: Mapping[str, Any]) -> None:
    """The x axis spans the buckets (one bucket: its own width), dates written concisely."""
    import pandas as pd
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    times = _times([b["time"] for b in report.get("traffic") or []])
    width = pd.Timedelta(seconds=int(report.get("bucket_seconds") or 60))
    ax.set_xlim(times.min() - width / 2, times.max() + width / 2)
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.tick_params(axis="x", labelsize=7)


def _by_version(report: Mapping[str, Any]) -> dict[Any, list[Mapping[str, Any]]]:
    out: dict[Any, list[Mapping[str, Any]]] = {}
    for bucket in report.get("traffic") or []:
        out.setdefault(bucket.get("version"), []).append(bucket)
    return out


def traffic_png(report: Mapping[str, Any]) -> bytes | None:
    """Predictions per time bucket, one line per version."""
    series = _by_version(report)
    if not series:
        return None

    def draw(ax: Any) -> None:
        for i, (version, buckets) in enumerate(series.items()):
            times = _times([b["time"] for b in buckets])
            ax.plot(times, [b.get("count") or 0 for b in buckets], marker="o",
                    color=COLORS[i % len(COLORS)], label=version_name(version))  # fmt: skip
        ax.set_ylim(bottom=0)
        ax.set_ylabel(f"predictions per {bucket_text(report.get('bucket_seconds'))}")
        ax.set_title("Traffic per version")
        ax.legend(fontsize=8)
        _time_axis(ax, report)

    return figure_png(draw, (6, 3))


def latency_png(report: Mapping[str, Any]) -> bytes | None:
    """Latency per bucket (p50 solid, p95 dashed), one colour per version."""
    series = _by_version(report)
    if not series:
        return None

    def draw(ax: Any) -> None:
        for i, (version, buckets) in enumerate(series.items()):
            times = _times([b["time"] for b in buckets])
            color = COLORS[i % len(COLORS)]
            for key, dash in (("p50", "-"), ("p95", "--")):
                values = [(b.get("latency_ms") or {}).get(key) for b in buckets]
                ax.plot(times, [float("nan") if v is None else v for v in values], dash,
                        marker="o", color=color, label=f"{version_name(version)} {key}")  # fmt: skip
        ax.set_ylim(bottom=0)
        ax.set_ylabel("latency (ms)")
        ax.set_title("Latency per version")
        ax.legend(fontsize=8)
        _time_axis(ax, report)

    return figure_png(draw, (6, 3))


def bucket_text(seconds: Any) -> str:
    names = {60: "minute", 300: "5 minutes", 900: "15 minutes", 3600: "hour",
             21600: "6 hours", 86400: "day", 604800: "week", 2592000: "30 days"}  # fmt: skip
    return names.get(int(seconds or 60), f"{seconds} s")


def shares(item: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """``(label, training share, live share)`` of a feature's (or the predictions')
    categories or bins."""
    out = []
    for c in item.get("categories") or []:
        out.append((str(c.get("value")), c.get("training") or 0.0, c.get("live") or 0.0))
    for b in item.get("bins") or []:
        out.append((bin_label(b), b.get("training") or 0.0, b.get("live") or 0.0))
    return out


def bin_label(b: Mapping[str, Any]) -> str:
    if b.get("missing"):
        return "(missing)"
    low, high = b.get("from"), b.get("to")
    if low is None and high is None:
        return "all"
    if low is None:
        return f"< {num(high)}"
    if high is None:
        return f">= {num(low)}"
    return f"{num(low)} to {num(high)}"


def distribution_png(item: Mapping[str, Any], title: str) -> bytes | None:
    """Training against live shares, side by side bars per category or bin."""
    found = shares(item)
    if not found:
        return None

    def draw(ax: Any) -> None:
        import numpy as np

        y = np.arange(len(found))[::-1]
        ax.barh(y + 0.2, [t for _, t, _ in found], 0.4, color=TRAINING, label="training")
        ax.barh(y - 0.2, [v for _, _, v in found], 0.4,
                color=WARN if item.get("warning") else LIVE, label="live")  # fmt: skip
        ax.set_yticks(y, [label for label, _, _ in found], fontsize=8)
        ax.set_xlabel("share of rows")
        ax.set_title(f"{title}: PSI {num(item.get('psi'))}", fontsize=10)
        ax.legend(fontsize=8)

    return figure_png(draw, (5.5, max(2.2, 0.35 * len(found) + 1.2)))


def psi_png(report: Mapping[str, Any]) -> bytes | None:
    """PSI per feature, the warning threshold as a line; warnings in red."""
    features = [f for f in report.get("drift") or [] if f.get("psi") is not None]
    if not features or not report.get("records"):
        return None
    limit = (report.get("thresholds") or {}).get("psi")

    def draw(ax: Any) -> None:
        names = [str(f["feature"]) for f in features][::-1]
        values = [f["psi"] for f in features][::-1]
        colors = [WARN if f.get("warning") else LIVE for f in features][::-1]
        ax.barh(names, values, color=colors)
        if limit is not None:
            ax.axvline(limit, color=WARN, linestyle="--", linewidth=1, label=f"warning: {limit}")
            ax.legend(fontsize=8)
        ax.set_xlabel("PSI (training data against the logged inputs)")
        ax.set_title("Drift per feature")
        ax.tick_params(axis="y", labelsize=8)

    return figure_png(draw, (6, max(2.2, 0.3 * len(features) + 1.2)))


def feedback_png(report: Mapping[str, Any]) -> bytes | None:
    items = [f for f in report.get("feedback") or [] if f.get("value") is not None]
    if not items:
        return None

    def draw(ax: Any) -> None:
        names = [version_name(f.get("version")) for f in items]
        values = [f["value"] for f in items]
        ax.bar(names, values, color=LIVE)
        for i, v in enumerate(values):
            ax.annotate(num(v, 3), (i, v), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel(str(items[0].get("metric") or "metric"))
        if items[0].get("metric") == "accuracy":
            ax.set_ylim(0, 1.05)
        ax.set_title("Live metric on feedback, per version")

    return figure_png(draw, (5, 2.8))


def details(report: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """Distribution plots of the features that warn (the first MAX_DETAILS)."""
    out: list[tuple[str, bytes]] = []
    for f in report.get("drift") or []:
        if f.get("warning") and len(out) < MAX_DETAILS:
            png = distribution_png(f, str(f.get("feature")))
            if png is not None:
                out.append((str(f.get("feature")), png))
    return out
