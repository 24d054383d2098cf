"""How values read in a form: tables as HTML (numbers by ``mlwidget.display.fmt_num``),
category labels, date formats, plots as PNG."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from ..display import fmt_num
from ._common import esc


def clean_label(value: Any) -> str:
    """A category as a label: 3.0 -> "3" (a float column of whole numbers), else as written."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    try:
        import numpy as np

        if isinstance(value, np.floating) and float(value).is_integer():
            return str(int(value))
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def is_numeric(series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def table_html(
    df, max_rows: int = 10, css: str = "mlwidget-table", mark: Iterable[str] = ()
) -> str:
    """The first rows of ``df`` as an HTML table (numbers rounded to significant digits and
    right-aligned under right-aligned headers, text left under left headers; the ``mark``
    columns highlighted), with the row count under it."""
    marked = {str(c) for c in mark}
    head = df.head(max_rows)
    columns = [str(c) for c in head.columns]
    numeric = [is_numeric(head[c]) for c in head.columns]
    th, rows = [], []
    for name, num in zip(columns, numeric, strict=True):
        style = f"text-align:{'right' if num else 'left'};padding:2px 8px"
        extra = ""
        if name in marked:
            style += ";background:#e3f2fd"
            extra = ' class="mlwidget-marked" title="added by the model"'
        th.append(f'<th style="{style}"{extra}>{esc(name)}</th>')
    for values in head.itertuples(index=False, name=None):
        cells = []
        for name, num, value in zip(columns, numeric, values, strict=True):
            style = f"text-align:{'right' if num else 'left'};padding:2px 8px"
            if name in marked:
                style += ";background:#e3f2fd;font-weight:bold"
            text = fmt_num(value) if not missing(value) else ""
            cells.append(f'<td style="{style}">{esc(text)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    table = (
        f'<table class="{css}" style="border-collapse:collapse">'
        f"<thead><tr>{''.join(th)}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    n = len(df)
    more = f"first {min(n, max_rows)} of {n} rows" if n > max_rows else f"{n} rows"
    return (
        '<div style="overflow:auto;max-height:360px">'
        f"{table}</div>"
        f'<div class="mlwidget-rowcount" data-rows="{n}">{esc(more)}</div>'
    )


def missing(value: Any) -> bool:
    try:
        import pandas as pd

        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%Y-%m-%d %H:%M:%S")


def date_format(values: Iterable[Any]) -> str | None:
    """The strftime format every (non-empty) value is written in, if they are all dates of one
    format (``"2021-03-04"``, ``"04/03/2021"``...), else None. Dates and timestamps: ISO."""
    import datetime as dt

    seen = [v for v in values if v is not None and not missing(v)]
    if not seen:
        return None
    if all(isinstance(v, dt.date) for v in seen):
        return "%Y-%m-%d"
    if not all(isinstance(v, str) for v in seen):
        return None
    for fmt in DATE_FORMATS:
        try:
            for v in seen[:200]:
                dt.datetime.strptime(v.strip(), fmt)
        except ValueError:
            continue
        return fmt
    return None


def figure_png(draw: Callable[[Any], None], size: tuple[float, float] = (5.5, 4)) -> bytes:
    """Draw on a fresh Agg figure (no pyplot state, thread-safe) and return PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    draw(ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def tags(values: Iterable[Any] | None) -> list[str]:
    """A list option's values as text (none: an empty list)."""
    return [str(v) for v in values or []]


WATERFALL_TOP = 12  # the largest contributions drawn one by one; the others as one bar


def waterfall_steps(explanation: dict, row: dict | None = None) -> list[dict]:
    """The steps of an explanation's waterfall, as the model page draws them: the base value,
    each column's contribution (largest effect first; past ``WATERFALL_TOP``, the others summed
    into one step), then the value explained. A column's label shows its value in ``row``."""
    items = sorted(explanation["contributions"].items(), key=lambda kv: -abs(kv[1]))
    shown = items[:WATERFALL_TOP] if len(items) > WATERFALL_TOP + 1 else items
    rest = items[len(shown) :]
    if rest:
        shown.append(("", sum(v for _, v in rest)))
    at = float(explanation["base_value"])
    steps = [{"kind": "base", "label": "base value", "value": at}]
    for name, value in shown:
        label = f"{len(rest)} other columns" if not name else name
        if name and row and row.get(name) is not None:
            label = f"{name} = {clean_label(row[name])}"
        steps.append({"kind": "feature", "name": name, "label": label, "value": float(value),
                      "from": at, "to": at + float(value)})  # fmt: skip
        at += float(value)
    steps.append({"kind": "value", "label": "this row", "value": float(explanation["value"])})
    return steps


def draw_waterfall(ax: Any, steps: list[dict]) -> None:
    """The waterfall on ``ax``: a bar per feature step from where the last step ended (red up,
    blue down; its ``gid`` is ``wf-feature``), a black mark at the base value and at the
    output, each step's number at the right."""
    ends = [e for s in steps for e in ((s["from"], s["to"]) if "from" in s else (s["value"],))]
    lo, hi = min(ends), max(ends)
    pad = (hi - lo) * 0.05 or 1.0
    for i, s in enumerate(steps):
        if s["kind"] == "feature":
            color = "#ff0051" if s["value"] >= 0 else "#008bfb"
            (bar,) = ax.barh(i, s["value"], left=s["from"], height=0.6, color=color)
            bar.set_gid("wf-feature")
            text = ("+" if s["value"] > 0 else "") + fmt_num(s["value"])
        else:
            ax.plot([s["value"]] * 2, [i - 0.35, i + 0.35], color="#1f2933", linewidth=3)
            text = fmt_num(s["value"])
        ax.annotate(text, (1.0, i), xycoords=("axes fraction", "data"), xytext=(6, 0),
                    textcoords="offset points", va="center", fontsize=8,
                    fontweight="bold" if s["kind"] != "feature" else "normal")  # fmt: skip
    ax.set_yticks(range(len(steps)), [s["label"] for s in steps], fontsize=8)
    ax.set_ylim(len(steps) - 0.5, -0.5)  # the base value on top, the output at the bottom
    ax.set_xlim(lo - pad, hi + pad)
    ax.grid(axis="x", color="#e4e7eb")
    ax.set_axisbelow(True)
