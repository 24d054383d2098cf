"""The summary: what is configured, what is serving, its score, and plots of the fitted model."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import numpy as np

from .. import predlog
from ..display import fmt_num
from ..jsonable import to_jsonable as jsonable
from ._common import Status, button, error_text, esc
from .importance import ImportanceView
from .render import clean_label, figure_png

MAX_PLOT_ROWS = 5000
MAX_BARS = 15


def feature_names(pipeline: Any, n: int) -> list[str]:
    """Names of the estimator's input columns, from the pipeline's transformers when possible."""
    try:
        names = [str(x) for x in pipeline[:-1].get_feature_names_out()]
    except Exception:
        names = []
    if len(names) != n:
        return [f"x{i}" for i in range(n)]
    cats = _categorical_columns(pipeline)
    return [readable_name(name, cats) for name in names]


def _categorical_columns(pipeline: Any) -> list[str]:
    """The columns the pipeline one-hot encodes (its "cat" transformer's), longest first."""
    try:
        transform = pipeline[0]
        columns = [
            str(c) for name, _, cols in transform.transformers_ if name == "cat" for c in cols
        ]
    except Exception:
        return []
    return sorted(columns, key=len, reverse=True)


def readable_name(name: str, cats: list[str]) -> str:
    """A pipeline output column as a reader says it: "cat__Pclass_3.0" -> "Pclass = 3",
    "cat__Embarked_infrequent_sklearn" -> "Embarked = (other)", "num__Age" -> "Age"."""
    prefix, _, rest = name.partition("__")
    if not rest:
        return name
    if prefix == "cat":
        for column in cats:
            if rest.startswith(column + "_"):
                value = rest[len(column) + 1 :]
                if value == "infrequent_sklearn":
                    return f"{column} = (other)"
                try:
                    value = clean_label(float(value)) if value.lower() != "nan" else value
                except ValueError:
                    pass
                return f"{column} = {value}"
    return rest


def importance(pipeline: Any, estimator: Any) -> tuple[str, list[str], np.ndarray] | None:
    """(title, names, values) from feature_importances_ or coef_, or None if the model has neither."""
    if estimator is None:
        return None
    if getattr(estimator, "feature_importances_", None) is not None:
        values = np.asarray(estimator.feature_importances_, dtype=float).ravel()
        title = "Feature importance"
    elif getattr(estimator, "coef_", None) is not None:
        coef = np.asarray(estimator.coef_, dtype=float)
        if coef.ndim == 2 and coef.shape[0] > 1:
            values, title = np.abs(coef).mean(axis=0), "Mean |coefficient| over classes"
        else:
            values, title = coef.ravel(), "Coefficients"
    else:
        return None
    return title, feature_names(pipeline, len(values)), values


def plot_importance(pipeline: Any, estimator: Any) -> bytes | None:
    found = importance(pipeline, estimator)
    if found is None:
        return None
    title, names, values = found
    order = np.argsort(np.abs(values))[::-1][:MAX_BARS][::-1]

    def draw(ax) -> None:
        colors = ["#1e88e5" if values[i] >= 0 else "#e53935" for i in order]
        ax.barh([names[i] for i in order], values[order], color=colors)
        ax.axvline(0, color="#555", linewidth=0.8)
        ax.set_title(f"{title} ({type(estimator).__name__})")
        ax.tick_params(axis="y", labelsize=8)

    return figure_png(draw)


def plot_out_of_fold(fitted: dict, target: str) -> tuple[str, bytes] | None:
    """The fit's out-of-fold confusion matrix or predicted vs actual (each row predicted by a
    model that did not see it), as recorded by the fit's cross-validation."""
    oof = fitted.get("out_of_fold") or {}
    cv = fitted.get("cv_score") or {}
    on = cv.get("on", "cv")
    if "matrix" in oof:
        from sklearn.metrics import ConfusionMatrixDisplay

        def draw(ax) -> None:
            matrix = np.asarray(oof["matrix"])
            labels = [clean_label(v) for v in oof["labels"]]
            ConfusionMatrixDisplay(matrix, display_labels=labels).plot(ax=ax, colorbar=False)
            ax.set_title(f"Confusion matrix, out-of-fold ({on}, {int(matrix.sum())} rows)")
            ax.set_xlabel(f"predicted {target}")
            ax.set_ylabel(f"actual {target}")

        return "confusion", figure_png(draw, (4.5, 4))
    if "actual" in oof:
        y = np.asarray(oof["actual"], dtype=float)
        title = f"Predicted vs actual, out-of-fold ({on}, {len(y)} rows)"
        return "predicted_vs_actual", _scatter(
            y, np.asarray(oof["predicted"], float), target, title
        )
    return None


def _scatter(y: np.ndarray, p: np.ndarray, target: str, title: str) -> bytes:
    """Predicted against actual values, with the line where they would be equal."""

    def draw(ax) -> None:
        ax.scatter(y, p, s=10, alpha=0.5, color="#1e88e5")
        lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
        ax.plot([lo, hi], [lo, hi], color="#e53935", linewidth=1)
        ax.set_xlabel(f"actual {target}")
        ax.set_ylabel(f"predicted {target}")
        ax.set_title(title)

    return figure_png(draw, (4.5, 4))


def plot_performance(model: Any) -> tuple[str, bytes] | None:
    """Confusion matrix (classifier) or predicted vs actual (regressor): out-of-fold when the
    fit was cross-validated, else on the stored (training) rows, which the title says."""
    kind = _fitted_kind(model)
    target = model.target_col
    if kind not in ("classifier", "regressor") or not target:
        return None
    fitted = model.info().get("fitted") or {}
    found = plot_out_of_fold(fitted, target)
    if found is not None:
        return found
    data = model.data()
    if target not in data.columns:
        return None
    data = data[data[target].notna()]
    if len(data) == 0:
        return None
    if len(data) > MAX_PLOT_ROWS:
        data = data.sample(MAX_PLOT_ROWS, random_state=0)
    actual = data[target].tolist()
    with predlog.facing("widget"):  # the plot's, not a prediction to log
        predicted = model.predict(data.drop(columns=[target]))
    if kind == "classifier":
        from sklearn.metrics import ConfusionMatrixDisplay

        def draw(ax) -> None:
            labels = sorted({*map(clean_label, actual), *map(clean_label, predicted)})
            ConfusionMatrixDisplay.from_predictions(
                [clean_label(v) for v in actual],
                [clean_label(v) for v in predicted],
                labels=labels,
                ax=ax,
                colorbar=False,
            )
            ax.set_title(f"Confusion matrix, training rows ({len(actual)}; flatters the model)")
            ax.set_xlabel(f"predicted {target}")
            ax.set_ylabel(f"actual {target}")

        return "confusion", figure_png(draw, (4.5, 4))

    y, p = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    title = f"Predicted vs actual, training rows ({len(y)}; flatters the model)"
    return "predicted_vs_actual", _scatter(y, p, target, title)


def _fitted_kind(model: Any) -> str | None:
    from ..estimators import estimator_kind

    est = model.estimator
    if est is None:
        return None
    try:
        return estimator_kind(type(est))
    except Exception:
        return getattr(model, "kind", None)


def _fmt(value: Any) -> str:
    """Numbers to significant digits (see ``fmt_num``); None as nothing."""
    return fmt_num(jsonable(value))


def info_html(info: dict) -> str:
    """The model's state as a small HTML report."""
    fitted = info.get("fitted") or {}
    stale = bool(info.get("stale"))
    rows = [
        ("name", esc(info.get("name", ""))),
        ("class", f'<span class="mlwidget-class">{esc(info.get("model") or "")}</span>'),
        ("kind", esc(info.get("kind") or "")),
        ("target", esc(info.get("target_col") or "")),
        ("features", esc(", ".join(map(str, info.get("features") or [])))),
        ("training rows", f'<span class="mlwidget-rows">{esc(info.get("rows", 0))}</span>'),
    ]
    if info.get("rows_explained"):
        rows.append(("rows used", f"<small>{esc(info['rows_explained'])}</small>"))
    if info.get("version"):
        rows.append(("version", f'<span class="mlwidget-version">{esc(info["version"])}</span>'))
    if fitted:
        rows += [
            (
                "serving",
                f'<span class="mlwidget-fitted-class">{esc(fitted.get("model", ""))}</span>',
            ),
            (
                "score",
                f'<span class="mlwidget-score">{esc(_fmt(fitted.get("score")))}</span> '
                f"({esc(fitted.get('metric') or '')} on {esc(_scored_on(fitted))})",
            ),
            ("cross-validated", cv_html(fitted)),
            ("trained at", esc(fitted.get("trained_at") or "")),
        ]
    else:
        rows.append(
            ("serving", '<span class="mlwidget-fitted-class">nothing: not trained yet</span>')
        )
    flag = (
        '<span class="mlwidget-stale" data-stale="true" style="color:#b71c1c">stale: the options '
        "changed since the last training; retrain to use them</span>"
        if stale
        else '<span class="mlwidget-stale" data-stale="false" style="color:#1b5e20">up to date</span>'
    )
    reasons = info.get("stale_reasons") or []
    if stale and reasons:
        flag += "<br><small>" + esc("; ".join(map(str, reasons))) + "</small>"
    rows.append(("stale", flag))
    body = "".join(
        f'<tr><th style="text-align:left;padding-right:12px">{k}</th><td>{v}</td></tr>'
        for k, v in rows
    )
    params = info.get("params") or {}
    ptable = "".join(
        f"<tr><td>{esc(k)}</td><td><code>{esc(_fmt(v) if v is not None else 'None')}</code></td></tr>"
        for k, v in sorted(params.items())
    )
    warnings = info.get("warnings") or []
    warn = (
        '<ul class="mlwidget-warnings" style="color:#e65100">'
        + "".join(f"<li>{esc(w)}</li>" for w in warnings)
        + "</ul>"
        if warnings
        else ""
    )
    return (
        f'<table class="mlwidget-info">{body}</table>{warn}'
        f"<details><summary>parameters of {esc(info.get('model') or '')}</summary>"
        f'<table class="mlwidget-params">{ptable}</table></details>'
    )


def cv_html(fitted: dict) -> str:
    """The cross-validated score beside the training one, or why there is none."""
    cv = fitted.get("cv_score")
    if not cv:
        return '<span class="mlwidget-cv-score">not computed (see warnings)</span>'
    return (
        f'<span class="mlwidget-cv-score">{esc(_fmt(cv.get("value")))}</span> '
        f"± {esc(_fmt(cv.get('std')))} ({esc(cv.get('metric') or '')}, {esc(cv.get('on'))}: "
        "each row scored by a model that did not see it)"
    )


class SummaryPanel(widgets.VBox):
    """Class, parameters, training rows, score, stale flag and plots. ``refresh()`` re-reads."""

    def __init__(self, model: Any, **kwargs: Any) -> None:
        self.model = model
        self.info: dict = {}
        self.images: dict[str, bytes] = {}
        self.html = widgets.HTML()
        self.html.add_class("mlwidget-summary-info")
        self.importance_image = widgets.Image(format="png", layout={"max_width": "520px"})
        self.importance_image.add_class("mlwidget-plot-importance")
        self.performance_image = widgets.Image(format="png", layout={"max_width": "440px"})
        self.performance_image.add_class("mlwidget-plot-performance")
        self.performance_caption = widgets.HTML()
        self.performance_caption.add_class("mlwidget-plot-caption")
        self.plots = widgets.HBox(
            [
                self.importance_image,
                widgets.VBox([self.performance_image, self.performance_caption]),
            ]
        )
        self.refresh_button = button("Refresh", "mlwidget-summary-refresh", "Re-read the model")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.status = Status("mlwidget-summary-status")
        self.global_importance = ImportanceView(model)  # permutation on held-out rows, a job
        super().__init__(
            children=[
                self.html, self.plots, self.global_importance, self.refresh_button, self.status
            ],
            **kwargs,
        )  # fmt: skip
        self.add_class("mlwidget-summary")
        self.refresh()

    def refresh(self) -> None:
        """Re-read the model (another process may have changed it) and redraw."""
        self.status.clear()
        try:
            self.info = self.model.info()
        except Exception as err:
            self.status.error(err)
            return
        self.html.value = info_html(self.info)
        self.images = {}
        problems = []
        try:
            png = plot_importance(self.model.pipeline, self.model.estimator)
            if png:
                self.images["importance"] = png
        except Exception as err:
            problems.append(f"importance plot: {error_text(err)}")
        try:
            found = plot_performance(self.model)
            if found:
                self.images[found[0]] = found[1]
        except Exception as err:
            problems.append(f"performance plot: {error_text(err)}")
        self._show(self.importance_image, self.images.get("importance"))
        perf = self.images.get("confusion") or self.images.get("predicted_vs_actual")
        self._show(self.performance_image, perf)
        cv = (self.info.get("fitted") or {}).get("cv_score")
        self.performance_caption.value = (
            ""
            if not perf
            else f"<small>Out-of-fold predictions ({esc(cv['on'])}): each row predicted by a "
            + (
                "model fitted on the rows before it (the first block is not predicted).</small>"
                if cv.get("split") == "time"
                else "model that did not see it.</small>"
            )
            if cv and (self.info.get("fitted") or {}).get("out_of_fold")
            else "<small>Predictions on the training rows: they flatter the model.</small>"
        )
        if problems:
            self.status.show("; ".join(problems), "error")

    @staticmethod
    def _show(image: widgets.Image, png: bytes | None) -> None:
        image.value = png or b""
        image.layout.display = "" if png else "none"


def _scored_on(fitted: dict[str, Any]) -> str:
    scored, rows = fitted.get("score_rows"), fitted.get("rows", "?")
    if scored and isinstance(rows, int) and scored < rows:
        return f"a random sample of {scored:,} of the {rows:,} training rows"
    return f"the {rows} training rows"
