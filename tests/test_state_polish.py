"""State that reads right (issue 30): the Python repr after a retrain, the dashboard header from
the model shown, the parameters offered for editing, the Predict tab's Explain waterfall.

Driven in pure Python, the way tests/test_widgets.py drives the forms."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS

from mlwidget import MLModel
from mlwidget.widgets import Dashboard, build_app


@pytest.fixture
def titanic(store_dir: Path, titanic_csv: Path) -> MLModel:
    return MLModel("titanic", data=str(titanic_csv), model=dict(GUIDE_OPTIONS), store=store_dir)


def small_table() -> pd.DataFrame:
    return pd.DataFrame({
        "a": [1, 2, 3, 4, 5, 6, 7, 8] * 4,
        "b": [0, 1, 0, 1, 0, 1, 0, 1] * 4,
        "y": ["x", "y"] * 16,
    })  # fmt: skip


# ---- the repr -------------------------------------------------------------------------------


def test_repr_after_a_retrain_that_picks_the_class(store_dir: Path) -> None:
    model = MLModel("untrained", data=small_table(), store=store_dir)
    assert repr(model) == "<MLModel 'untrained' (no class) [not fitted]>"
    model.retrain(target_col="y")
    # the fit chose the default classifier for a text target: the repr names it, fitted
    assert repr(model) == "<MLModel 'untrained' RandomForestClassifier [fitted, version 1]>"


def test_repr_sees_a_retrain_by_another_handle(store_dir: Path) -> None:
    mine = MLModel("shared", data=small_table(), store=store_dir)
    assert "[not fitted]" in repr(mine)
    theirs = MLModel.open("shared", store=store_dir)
    theirs.configure(class_="LogisticRegression")
    theirs.retrain(target_col="y")
    assert repr(mine) == "<MLModel 'shared' LogisticRegression [fitted, version 1]>"


# ---- the dashboard header -------------------------------------------------------------------


def header_text(html: str) -> str:
    import re

    return re.sub(r"<[^>]+>", "", html)


def test_dashboard_header_comes_from_the_model_shown(titanic: MLModel, store_dir: Path) -> None:
    MLModel("iris", data=small_table(), store=store_dir)  # not trained: no target yet
    board = Dashboard(titanic)
    assert board.app is not None
    text = header_text(board.app.header.value)
    assert text.startswith("Model: titanic")
    assert "predicts Survived (classifier: LogisticRegression), version 1" in text
    assert "…/mlhandler/titanic" in text
    board.picker.value = "iris"  # the user picks another model: the header follows
    text = header_text(board.app.header.value)
    assert text.startswith("Model: iris")
    assert "not trained yet" in text and "/mlhandler/iris" in text
    assert "titanic" not in text and "Survived" not in text
    # trained in its Editor-less way (Python): the header says so when the tab is revisited
    board.app.model.retrain(target_col="y")
    board.app.tabs.selected_index = 1
    board.app.tabs.selected_index = 0
    assert "predicts y (classifier: RandomForestClassifier), version 1" in header_text(
        board.app.header.value
    )


# ---- the Editor's parameters ----------------------------------------------------------------


def test_editor_leaves_out_deprecated_placeholders_and_checks_booleans(titanic: MLModel) -> None:
    import ipywidgets as widgets

    assert titanic.info()["params"]["penalty"] == "deprecated"  # scikit-learn's placeholder
    params = build_app(titanic).editor.params
    assert "penalty" not in params and "C" in params
    assert isinstance(params["fit_intercept"], widgets.Checkbox)
    assert params["fit_intercept"].value is True


# ---- the Predict tab's Explain waterfall ----------------------------------------------------


def drawn_bars(steps: list[dict]) -> list[tuple[float, float]]:
    """The feature bars ``render.draw_waterfall`` draws for ``steps``: (left, signed width)."""
    from matplotlib.figure import Figure

    from mlwidget.widgets.render import draw_waterfall

    ax = Figure().add_subplot(1, 1, 1)
    draw_waterfall(ax, steps)
    return [(p.get_x(), p.get_width()) for p in ax.patches if p.get_gid() == "wf-feature"]


@pytest.mark.parametrize("class_", ["LogisticRegression", "RandomForestClassifier"])
def test_explain_draws_a_waterfall_that_adds_up(
    store_dir: Path, titanic_csv: Path, class_: str
) -> None:
    from conftest import GUIDE_PASSENGER

    options = {**GUIDE_OPTIONS, "class": class_}
    if class_ == "RandomForestClassifier":
        options["params"] = {"n_estimators": 20, "max_depth": 4, "random_state": 0}
    model = MLModel("titanic", data=str(titanic_csv), model=options, store=store_dir)
    form = build_app(model).predict
    assert form.explain_box.layout.display == "none"  # nothing explained yet
    form.set_row(GUIDE_PASSENGER)
    form.explain_button.click()
    ex = form.explanation
    assert ex is not None and not form.status.text, form.status.text
    assert ex["exact"] and ex["method"] in ("linear", "tree")
    assert form.explain_box.layout.display is None
    assert bytes(form.waterfall.value).startswith(b"\x89PNG")
    # the bars as drawn: each starts where the one before ended, from the base value, and the
    # last ends at the explained output (the guide's passenger: Sex = male, Pclass = 3 ...)
    steps = form.steps
    assert steps[0]["value"] == pytest.approx(ex["base_value"])
    assert steps[-1]["value"] == pytest.approx(ex["value"])
    bars = drawn_bars(steps)
    assert len(bars) == len(ex["contributions"]) == 7
    at = ex["base_value"]
    for left, width in bars:
        assert left == pytest.approx(at)
        at += width
    assert at == pytest.approx(ex["value"], abs=1e-9)
    assert ex["base_value"] + sum(ex["contributions"].values()) == pytest.approx(ex["value"])
    labels = [s["label"] for s in steps]
    assert "Sex = male" in labels and "Pclass = 3" in labels
    note = form.explain_note.value
    assert "exact" in note and ex["method"] in note
    # a new Predict hides the old explanation (the row may have changed)
    form.inputs["Sex"].value = "female"
    form.predict()
    assert form.explanation is None and form.explain_box.layout.display == "none"


def test_explain_of_a_model_without_explanations_says_why(store_dir: Path) -> None:
    model = MLModel("clusters", data=small_table().drop(columns="y"), class_="KMeans",
                    store=store_dir)  # fmt: skip
    form = build_app(model).predict
    form.explain_button.click()
    assert form.explanation is None and form.explain_box.layout.display == "none"
    assert form.status.kind == "error" and "classifiers and regressors" in form.status.text
