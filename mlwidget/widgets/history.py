"""The History tab: the model's versions (class, key parameters, both scores, when and by whom:
the audit's ``trained_by``), a plot of the scores across versions, Rollback with a confirmation,
and the diff of two versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..display import fmt_num
from ._common import Status, button, esc
from .render import figure_png


def _num(value: Any) -> str:
    return fmt_num(value)


def _score(entry: dict, key: str) -> float | None:
    value = (entry.get(key) or {}).get("value")
    return value if isinstance(value, int | float) else None


def key_params(entry: dict, limit: int = 4) -> str:
    """The parameters of a version that differ from its class's defaults (the ones that say
    what is special about it), at most ``limit``."""
    from ..estimators import resolve_class
    from ..jsonable import to_jsonable

    params = entry.get("params") or {}
    try:  # spelled as stored parameters are (NaN as "nan")
        defaults = resolve_class(entry.get("class") or "")().get_params(deep=False)
        defaults = to_jsonable(defaults, nan="nan")
    except Exception:
        defaults = {}
    special = [f"{k}={v}" for k, v in sorted(params.items()) if defaults.get(k, object()) != v]
    more = f" (+{len(special) - limit})" if len(special) > limit else ""
    return ", ".join(special[:limit]) + more or "defaults"


def versions_html(versions: list[dict]) -> str:
    head = "".join(
        f'<th style="text-align:left">{h}</th>'
        for h in ("version", "class", "key parameters", "score (training)", "cv score", "rows",
                  "trained at", "trained by")
    )  # fmt: skip
    body = []
    for v in versions:
        cv = v.get("cv_score") or {}
        cv_text = f"{_num(cv.get('value'))} ± {_num(cv.get('std'))}" if cv else "not computed"
        mark = " ◀ serving" if v.get("serving") else ""
        body.append(
            f'<tr class="mlwidget-version-row" data-version="{v["version"]}"'
            f"{' data-serving=true' if v.get('serving') else ''}>"
            f"<td><b>{v['version']}</b>{mark}</td><td>{esc(v.get('class') or '')}</td>"
            f"<td><small>{esc(key_params(v))}</small></td>"
            f"<td>{_num(_score(v, 'score'))}</td><td>{esc(cv_text)}</td>"
            f"<td>{esc(v.get('rows') or '')}</td><td><small>{esc(v.get('trained_at') or '')}"
            "</small></td>"
            # who trained it (a key's label and id, a JupyterHub user, owner); "—": before the
            # audit was recorded
            f'<td class="mlwidget-trained-by"><small>{esc(v.get("trained_by") or "—")}</small></td>'
            "</tr>"
        )
    return (
        '<table class="mlwidget-history" style="border-collapse:collapse">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def plot_scores(versions: list[dict]) -> bytes | None:
    """Training and cross-validated scores across versions (oldest left)."""
    ordered = sorted(versions, key=lambda v: v["version"])
    if not ordered:
        return None
    xs = [v["version"] for v in ordered]
    training = [_score(v, "score") for v in ordered]
    cv = [_score(v, "cv_score") for v in ordered]
    metric = next((v["score"].get("metric") for v in ordered if v.get("score")), "score")

    def draw(ax) -> None:
        ax.plot(xs, training, "o--", color="#9e9e9e", label="training rows (flatters)")
        if any(c is not None for c in cv):
            ax.plot(xs, cv, "o-", color="#1e88e5", label="cross-validated")
        ax.set_xticks(xs)
        ax.set_xlabel("version")
        ax.set_ylabel(str(metric))
        ax.set_title("Scores across versions")
        ax.legend(loc="best", fontsize=8)

    return figure_png(draw, (5, 3))


def diff_html(a: dict, b: dict) -> str:
    """What differs between two versions' class, parameters and options."""
    rows = []
    if a.get("class") != b.get("class"):
        rows.append(("class", a.get("class"), b.get("class")))
    for group in ("params", "options"):
        left, right = a.get(group) or {}, b.get(group) or {}
        for key in sorted(set(left) | set(right)):
            if key == "params" or left.get(key) == right.get(key):
                continue
            rows.append((key, left.get(key, "—"), right.get(key, "—")))
    if not rows:
        return '<span class="mlwidget-diff-same">Same class, parameters and options.</span>'
    body = "".join(
        f"<tr><td>{esc(k)}</td><td><code>{esc(x)}</code></td><td><code>{esc(y)}</code></td></tr>"
        for k, x, y in rows
    )
    return (
        f'<table class="mlwidget-diff"><thead><tr><th></th><th>version {a["version"]}</th>'
        f"<th>version {b['version']}</th></tr></thead><tbody>{body}</tbody></table>"
    )


class HistoryPanel(widgets.VBox):
    """Versions of the model; ``rollback`` asks for confirmation (``confirm`` does it)."""

    def __init__(
        self, model: Any, on_change: Callable[[str], None] | None = None, **kwargs: Any
    ) -> None:
        self.model = model
        self.on_change = on_change
        self.versions: list[dict] = []
        self.table = widgets.HTML()
        self.plot = widgets.Image(format="png", layout={"max_width": "520px"})
        self.plot.add_class("mlwidget-history-plot")
        self.choice = widgets.Dropdown(description="Version", layout={"width": "280px"})
        self.choice.add_class("mlwidget-history-choice")
        self.rollback_button = button(
            "Roll back", "mlwidget-history-rollback", "Serve this version again (no refit)"
        )
        self.rollback_button.on_click(lambda _: self.rollback())
        self.yes = button("Yes, roll back", "mlwidget-history-yes", "", "danger")
        self.no = button("Cancel", "mlwidget-history-no")
        self.yes.on_click(lambda _: self.confirm())
        self.no.on_click(lambda _: self._ask(False))
        self.question = widgets.HTML()
        self.confirmation = widgets.HBox([self.question, self.yes, self.no])
        self.left = widgets.Dropdown(description="Compare", layout={"width": "300px"})
        self.right = widgets.Dropdown(description="with", layout={"width": "300px"})
        self.diff = widgets.HTML()
        for d in (self.left, self.right):
            d.observe(lambda _: self._show_diff(), "value")
        self.export_button = button(
            "Export for MLflow",
            "mlwidget-history-export",
            "An MLflow model directory (zip) of the chosen version: MLflow, MLServer, KServe",
        )
        self.export_button.on_click(lambda _: self.export())
        self.download = widgets.HTML()
        self.status = Status("mlwidget-history-status")
        super().__init__(
            children=[
                self.table,
                self.plot,
                widgets.HBox([self.choice, self.rollback_button, self.export_button]),
                self.download,
                self.confirmation,
                widgets.HBox([self.left, self.right]),
                self.diff,
                self.status,
            ],
            **kwargs,
        )
        self.add_class("mlwidget-history-panel")
        self._ask(False)
        self.refresh()
        self.choice.observe(self._chosen, "value")

    def refresh(self) -> None:
        """Re-read the versions (another process may have retrained or rolled back)."""
        try:
            self.versions = self.model.versions()
        except Exception as err:
            self.status.error(err)
            return
        self.table.value = (
            versions_html(self.versions)
            if self.versions
            else "<i>No versions yet: every successful retrain adds one.</i>"
        )
        png = plot_scores(self.versions)
        self.plot.value = png or b""
        self.plot.layout.display = "" if png else "none"
        # A refresh (after a rollback, a retrain elsewhere) keeps what was chosen while that
        # version exists: Export exports the version the picker shows, and the picker says
        # which one serves. The first choice is the newest version not serving.
        numbers = [v["version"] for v in self.versions]
        kept = [
            d.value if d.value in numbers else None for d in (self.choice, self.left, self.right)
        ]
        options = [
            (f"{v['version']} · {v.get('class')}" + (" · serving" if v.get("serving") else ""),
             v["version"])
            for v in self.versions
        ]  # fmt: skip
        for d in (self.choice, self.left, self.right):
            d.options = options
        older = [v["version"] for v in self.versions if not v.get("serving")]
        first = older[0] if older else (numbers[0] if numbers else None)
        self.choice.value = kept[0] if kept[0] is not None else first
        if len(options) >= 2:
            self.left.value = kept[1] if kept[1] is not None else options[1][1]
            self.right.value = kept[2] if kept[2] is not None else options[0][1]
        self.export_button.disabled = not options
        self._chosen()
        self._show_diff()

    def _chosen(self, _change: Any = None) -> None:
        """Roll back only to a version that is not serving; say which version Export takes."""
        entry = self._entry(self.choice.value)
        if _change is not None:
            self.download.value = ""  # a link made for another version goes
        self.rollback_button.disabled = entry is None or bool(entry.get("serving"))
        self.export_button.tooltip = (
            f"An MLflow model directory (zip) of version {entry['version']}"
            + (" (serving)" if entry.get("serving") else "")
            if entry
            else "An MLflow model directory (zip) of the chosen version"
        )

    def export(self, max_bytes: int = 50 * 1024 * 1024) -> bool:
        """A download link to the chosen version as an MLflow model directory (zip)."""
        import base64

        number = self.choice.value
        try:
            data = self.model.export_zip("mlflow", number)
        except Exception as err:
            self.status.error(err)
            return False
        name = f"{self.model.name}-v{number}-mlflow.zip"
        if len(data) > max_bytes:
            self.download.value = (
                f"The export is {len(data) / 1e6:.0f} MB, too big for the notebook: use "
                f"model.export('mlflow', path, version={number})."
            )
            return False
        uri = "data:application/zip;base64," + base64.b64encode(data).decode("ascii")
        self.download.value = (
            f'<a class="mlwidget-download" download="{esc(name)}" href="{uri}" '
            f'style="color:#0d47a1;text-decoration:underline">Download {esc(name)}</a> '
            "<small>(MLflow model directory: mlflow.pyfunc.load_model, mlflow models serve, "
            "MLServer, KServe)</small>"
        )
        return True

    def _entry(self, number: Any) -> dict | None:
        return next((v for v in self.versions if v["version"] == number), None)

    def _show_diff(self) -> None:
        a, b = self._entry(self.left.value), self._entry(self.right.value)
        self.diff.value = diff_html(a, b) if a and b else ""

    def _ask(self, show: bool) -> None:
        self.confirmation.layout.display = "" if show else "none"

    def rollback(self) -> None:
        """Ask to confirm the rollback to the chosen version."""
        entry = self._entry(self.choice.value)
        if entry is None:
            return
        cv = _score(entry, "cv_score")
        self.question.value = (
            f"Serve version {entry['version']} ({esc(entry.get('class'))}"
            + (f", cv {fmt_num(cv)}" if cv is not None else "")
            + ") again instead of the current one? &nbsp;"
        )
        self._ask(True)

    def confirm(self) -> bool:
        """Roll back to the chosen version (after ``rollback()`` asked)."""
        self._ask(False)
        try:
            done = self.model.rollback(self.choice.value)
        except Exception as err:
            self.status.error(err)
            return False
        self.status.show(
            f"Version {done['version']} ({done['class']}) serves again "
            f"(it was version {done['previous']}).",
            "ok",
        )
        self.refresh()
        if self.on_change is not None:
            self.on_change("rollback")
        return True
