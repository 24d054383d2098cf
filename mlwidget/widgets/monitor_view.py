"""What the Monitor tab shows of a monitor answer (``model.monitor()``, docs/monitoring.md) as
HTML, pure functions of it: the records and warnings, the versions, the live metric per
version, drift per feature with its warnings highlighted, the shadow comparison. The plots are
monitor_plots.py's; the model page draws the same from ``?_monitor`` (_monitor_js.html)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..display import fmt_num
from ._common import esc

NO_LOG = (
    "No logged predictions: turn on log_predictions (model.configure(log_predictions=True), "
    "or PUT ?_model&log_predictions=true), then every face's answers are logged here."
)
NO_RECORDS = (
    "No logged predictions in this window yet: they appear here as the model answers "
    "(Python calls too, with log_python on)."
)
NO_FEEDBACK = (
    "No feedback yet: mark an answer right or wrong, or give its actual value, in the Predict "
    "tab (or POST ?_action=feedback with the answer's X-Prediction-Id)."
)

LEFT = ' style="text-align:left;padding:2px 8px"'
RIGHT = ' style="text-align:right;padding:2px 8px"'


def num(value: Any, digits: int = 4) -> str:
    """A number as the forms show it; nothing for a missing one."""
    return "" if value is None else fmt_num(value, digits)


def note(text: str, css: str = "mlwidget-monitor-empty") -> str:
    return f'<p class="{css}" style="color:#555;margin:4px 0">{esc(text)}</p>'


def heading(text: str) -> str:
    return f'<h4 style="margin:12px 0 4px">{esc(text)}</h4>'


def table(css: str, header: Sequence[str], rows: Sequence[str]) -> str:
    head = "".join(f"<th{LEFT}>{esc(h)}</th>" for h in header)
    return (
        f'<table class="{css}" style="border-collapse:collapse"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one (a field of an answer may be null)."""
    return value if isinstance(value, Mapping) else {}


def version_name(version: Any) -> str:
    return "no version" if version is None else f"version {version}"


# ------------------------------------------------------------------------------ HTML


def overview_html(report: Mapping[str, Any], logging_on: bool) -> str:
    """How many records, the warnings (highlighted) and the notes; or why there is nothing."""
    out = [
        f'<p class="mlwidget-monitor-records" data-records="{int(report.get("records") or 0)}">'
        f"<b>{int(report.get('records') or 0):,}</b> logged predictions"
        f"{window(report)}.</p>"
    ]
    if not report.get("records"):
        out.append(note(NO_RECORDS if logging_on else NO_LOG))
    warnings = report.get("warnings") or []
    if warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
        out.append(
            '<div class="mlwidget-monitor-warnings" style="color:#b42318;background:#fdecea;'
            f'padding:4px 8px;border-radius:4px"><b>Drift warnings</b><ul style="margin:2px 0">'
            f"{items}</ul></div>"
        )
    for text in report.get("notes") or []:
        if not (text.startswith("No logged predictions") and not report.get("records")):
            out.append(note(text, "mlwidget-monitor-note"))
    return "".join(out)


def window(report: Mapping[str, Any]) -> str:
    parts = []
    if report.get("since"):
        parts.append(f"since {report['since']}")
    if report.get("until"):
        parts.append(f"until {report['until']}")
    if report.get("version") is not None:
        parts.append(f"of version {report['version']}")
    return (" " + esc(" ".join(parts))) if parts else ""


def versions_html(report: Mapping[str, Any]) -> str:
    rows = []
    for v in report.get("versions") or []:
        lat = v.get("latency_ms") or {}
        rows.append(
            f'<tr data-version="{esc(v.get("version"))}"><td{LEFT}>{esc(version_name(v.get("version")))}'
            f"</td><td{RIGHT}>{int(v.get('count') or 0):,}</td><td{LEFT}>{esc(v.get('first') or '')}"
            f"</td><td{LEFT}>{esc(v.get('last') or '')}</td><td{RIGHT}>{num(lat.get('p50'))}</td>"
            f"<td{RIGHT}>{num(lat.get('p95'))}</td></tr>"
        )
    if not rows:
        return ""
    header = ("version", "predictions", "first", "last", "latency p50 (ms)", "p95 (ms)")
    return table("mlwidget-monitor-versions", header, rows)


def feedback_html(report: Mapping[str, Any]) -> str:
    """The live metric per version on its labelled (and flagged) feedback."""
    items = report.get("feedback") or []
    if not items:
        return note(NO_FEEDBACK)
    rows = []
    for f in items:
        metric = f.get("metric") or ""
        extra = f" (MAE {num(f.get('mae'))})" if f.get("mae") is not None else ""
        rows.append(
            f'<tr data-version="{esc(f.get("version"))}"><td{LEFT}>{esc(version_name(f.get("version")))}'
            f'</td><td{LEFT} class="mlwidget-metric-name">{esc(metric)}</td>'
            f'<td{RIGHT} class="mlwidget-metric-value"><b>{num(f.get("value"))}</b>{esc(extra)}</td>'
            f"<td{RIGHT}>{int(f.get('rows') or 0)}</td><td{RIGHT}>{int(f.get('labelled') or 0)}</td>"
            f"<td{RIGHT}>{int(f.get('flagged') or 0)}</td><td{RIGHT}>{int(f.get('wrong_flags') or 0)}"
            "</td></tr>"
        )
    header = ("version", "metric", "value", "on rows", "labelled", "flagged", "flagged wrong")
    return table("mlwidget-monitor-feedback", header, rows)


def drift_html(report: Mapping[str, Any]) -> str:
    """One row per feature: PSI (against its threshold), level, KS, and the warning's
    reasons; a warning's row is highlighted."""
    limits = report.get("thresholds") or {}
    rows = []
    for f in report.get("drift") or []:
        warn = bool(f.get("warning"))
        style = ' style="background:#fdecea;color:#b42318;font-weight:bold"' if warn else ""
        why = "; ".join(f.get("reasons") or []) or f.get("note") or ""
        if not f.get("enough_rows", True) and not why:
            why = f"fewer than {limits.get('min_rows', '')} rows: no warning"
        rows.append(
            f'<tr class="mlwidget-drift-row{" mlwidget-drift-warn" if warn else ""}" '
            f'data-feature="{esc(f.get("feature"))}" data-warning="{str(warn).lower()}"{style}>'
            f"<td{LEFT}>{esc(f.get('feature'))}</td><td{LEFT}>{esc(f.get('kind') or '')}</td>"
            f'<td{RIGHT} class="mlwidget-drift-psi">{num(f.get("psi"))}</td>'
            f"<td{LEFT}>{esc(f.get('level') or '')}</td><td{RIGHT}>{num(f.get('ks_statistic'))}</td>"
            f"<td{RIGHT}>{num(f.get('ks_p'))}</td><td{LEFT}>{esc(why)}</td></tr>"
        )
    if not rows:
        return ""
    legend = note(
        f"A warning: PSI above {num(limits.get('psi'))}, or KS p below {num(limits.get('ks_p'))} "
        f"with a statistic of at least {num(limits.get('ks_statistic'))}, on at least "
        f"{limits.get('min_rows', '')} rows each side (PSI above "
        f"{num(limits.get('psi_moderate'))}: moderate).",
        "mlwidget-monitor-thresholds",
    )
    header = ("feature", "kind", "PSI", "level", "KS statistic", "KS p", "warning")
    return table("mlwidget-monitor-drift", header, rows) + legend


def predictions_html(report: Mapping[str, Any]) -> str:
    p = report.get("predictions") or {}
    if p.get("note") or not (p.get("categories") or p.get("bins")):
        return note(f"Predictions against the training target: {p.get('note') or 'no data'}.")
    warn = p.get("warning")
    style = "color:#b42318;font-weight:bold" if warn else "color:#555"
    reasons = "; ".join(p.get("reasons") or [])
    return (
        f'<p class="mlwidget-monitor-psi" style="{style};margin:4px 0">PSI {num(p.get("psi"))} '
        f"({esc(p.get('level') or '')}){': ' + esc(reasons) if reasons else ''}</p>"
    )


def shadow_html(shadow: Mapping[str, Any] | None) -> str:
    """The shadow version against the serving one, side by side: each one's metric on the
    same labelled feedback (given per side, or once for both) and latency. Any field may be
    missing."""
    if not isinstance(shadow, Mapping):
        return ""
    sides = [mapping(shadow.get(k)) for k in ("serving", "candidate")]

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    def row(label: str, values: list[Any], fn: Any = num) -> str:
        cells = "".join(f"<td{RIGHT}>{esc(fn(v))}</td>" for v in values)
        return f"<tr><td{LEFT}>{esc(label)}</td>{cells}</tr>"

    def either(side: Mapping[str, Any], key: str) -> Any:
        return side.get(key) if side.get(key) is not None else shadow.get(key)

    latency = [mapping(s.get("latency_ms")) for s in sides]
    rows = [
        row("metric", [either(s, "metric") for s in sides], text),
        row("value", [s.get("value") for s in sides]),
        row("labelled rows", [either(s, "labelled") for s in sides], text),
    ]
    if any(s.get("mae") is not None for s in sides):
        rows.append(row("MAE", [s.get("mae") for s in sides]))
    if any(lat.get("p50") is not None for lat in latency):
        rows.append(row("latency p50 (ms)", [lat.get("p50") for lat in latency]))
    serving_version = shadow.get("serving_version", sides[0].get("version"))
    header = (
        "",
        f"serving ({version_name(serving_version)})",
        f"shadow ({version_name(shadow.get('version', sides[1].get('version')))})",
    )
    agreement = shadow.get("agreement")
    agree = "" if agreement is None else f"they agree on {num(agreement * 100, 3)}% of them"
    answered = f"{text(shadow.get('rows')) or '?'} rows answered by both"
    summary = "; ".join(x for x in (answered, agree) if x)
    return table("mlwidget-monitor-shadow", header, rows) + note(summary, "mlwidget-shadow-rows")
