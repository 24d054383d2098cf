"""The widget face, driven in pure Python the way ipywidgets' own tests do it.

Every test assigns ``.value``s, clicks buttons and reads what the user would see in the forms.
"""

from __future__ import annotations

import base64
import datetime
import io
import threading
import time
from pathlib import Path

import ipywidgets as widgets
import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER, NOTEBOOKS

from mlwidget import BadRequest, MLModel, list_models
from mlwidget.display import fmt_num
from mlwidget.jobs.job import Pause
from mlwidget.widgets import (
    Dashboard,
    EditorForm,
    MLApp,
    PredictForm,
    SummaryPanel,
    UploadForm,
    build_app,
)
from mlwidget.widgets.summary import importance

PNG = b"\x89PNG"


@pytest.fixture
def titanic(store_dir: Path, titanic_csv: Path) -> MLModel:
    return MLModel("titanic", data=str(titanic_csv), model=dict(GUIDE_OPTIONS), store=store_dir)


@pytest.fixture
def app(titanic: MLModel) -> MLApp:
    return build_app(titanic)


def descendants(widget: widgets.Widget) -> list[widgets.Widget]:
    """``widget`` and every widget inside it (through box children), as the page would hold them."""
    out = [widget]
    for child in getattr(widget, "children", ()):
        out += descendants(child)
    return out


def file_value(path: Path, name: str | None = None, mime: str = "text/csv") -> tuple[dict, ...]:
    """A FileUpload value as ipywidgets 8 sends it from the browser."""
    content = path.read_bytes() if isinstance(path, Path) else path
    return (
        {
            "name": name or path.name,
            "type": mime,
            "size": len(content),
            "content": memoryview(content),
            "last_modified": datetime.datetime.now(datetime.timezone.utc),
        },
    )


# ---- predict ----------------------------------------------------------------------------


def test_widget_method_returns_the_app(titanic: MLModel) -> None:
    ui = titanic.widget()
    assert isinstance(ui, MLApp)
    assert [ui.tabs.get_title(i) for i in range(4)] == ["Predict", "Upload", "Editor", "Summary"]


def test_predict_form_is_built_from_the_schema(app: MLApp) -> None:
    inputs = app.predict.inputs
    assert set(inputs) == set(GUIDE_PASSENGER)
    assert isinstance(inputs["Sex"], widgets.Dropdown)
    assert set(inputs["Sex"].options) >= {("male", "male"), ("female", "female")}
    assert isinstance(inputs["Pclass"], widgets.Dropdown)  # a forced categorical
    assert [v for _, v in inputs["Pclass"].options] == [1, 2, 3]
    assert isinstance(inputs["Age"], widgets.FloatText | widgets.IntText)
    assert isinstance(inputs["Fare"], widgets.FloatText)
    assert isinstance(inputs["SibSp"], widgets.IntText)
    # prefilled with a typical row, so Predict works right away
    assert app.predict.predict() in (0, 1)


def test_guide_passenger_predicts_0(app: MLApp) -> None:
    form = app.predict
    for name, value in GUIDE_PASSENGER.items():
        form.inputs[name].value = value
    form.button.click()
    assert form.prediction == 0
    assert 'class="mlwidget-prediction">0<' in form.answer.value
    assert set(form.probabilities) == {"0", "1"}
    assert form.probabilities["0"] > 0.5
    assert sum(form.probabilities.values()) == pytest.approx(1)
    assert form.status.kind == ""


def test_predict_form_without_a_fitted_model(store_dir: Path) -> None:
    model = MLModel("empty", store=store_dir, model={"class": "LogisticRegression"})
    ui = build_app(model)
    assert ui.predict.inputs == {}
    assert ui.predict.button.disabled
    assert "No fitted model yet" in ui.predict.status.text


# ---- upload -----------------------------------------------------------------------------


def test_upload_csv_predicts_891_rows(app: MLApp, titanic_csv: Path) -> None:
    up = app.upload
    up.upload.value = file_value(titanic_csv)
    assert "891 rows" in up.file_info.value
    up.action.value = "predict"
    up.run_button.click()
    app.wait()
    assert up.status.kind == "ok", up.status.text
    assert len(up.result) == 891
    assert 'data-rows="891"' in up.output.value
    assert "first 10 of 891 rows" in up.output.value
    href = up.download.value.split('href="', 1)[1].split('"', 1)[0]
    assert href.startswith("data:text/csv;base64,")
    table = pd.read_csv(io.BytesIO(base64.b64decode(href.split(",", 1)[1])))
    assert len(table) == 891
    original = pd.read_csv(titanic_csv)
    # the input's columns as given (the actual Survived too), then what the model adds
    assert list(table.columns) == [*original.columns, "predicted Survived", "correct"]
    assert set(table["predicted Survived"]) <= {0, 1}
    assert table["Survived"].tolist() == original["Survived"].tolist()
    assert table["Fare"].tolist() == original["Fare"].tolist()  # full precision in the download
    assert 'download="titanic-predictions.csv"' in up.download.value


def test_upload_json_scores_with_a_metric(app: MLApp, titanic_csv: Path) -> None:
    records = pd.read_csv(titanic_csv).head(200).to_json(orient="records").encode()
    up = app.upload
    up.upload.value = file_value(records, "rows.json", "application/json")
    up.action.value = "score"
    up.metric.value = "f1_weighted"
    up.run_button.click()
    app.wait()
    assert up.status.kind == "ok", up.status.text
    assert up.result["metric"] == "f1_weighted"
    assert up.status.text.startswith("f1_weighted = 0.")


def test_upload_retrain_with_target_and_append(app: MLApp, titanic_csv: Path) -> None:
    up = app.upload
    up.upload.value = file_value(titanic_csv)
    up.action.value = "retrain"
    assert up.target.layout.display == "" and up.target.value == "Survived"
    up.metric.value = "accuracy"
    up.run_button.click()
    app.wait()
    assert up.status.kind == "ok", up.status.text
    assert up.status.text.startswith("Trained LogisticRegression")
    assert "accuracy on this file = 0." in up.status.text

    up.action.value = "append"
    up.run_button.click()
    app.wait()
    assert up.status.kind == "ok", up.status.text
    assert up.result["appended"] == 891
    assert up.result["rows"] == 1782
    assert 'class="mlwidget-rows">1782<' in app.summary.html.value


def test_upload_too_big_points_to_rest(titanic: MLModel, titanic_csv: Path) -> None:
    ui = build_app(titanic, max_upload_bytes=1000)
    up = ui.upload
    up.upload.value = file_value(titanic_csv)
    assert up.status.kind == "error"
    assert "more than the" in up.status.text
    assert "/mlhandler/titanic?_action=predict" in up.status.text
    up.run_button.click()
    assert up.status.kind == "error" and up.result is None


def test_upload_unreadable_file_shows_the_error(app: MLApp) -> None:
    up = app.upload
    up.upload.value = file_value(
        b"\x00\x01\x02 not a table", "junk.bin", "application/octet-stream"
    )
    assert up.status.kind == "error"
    assert "Traceback" not in up.status.text
    up.run_button.click()
    assert up.result is None


def test_run_without_a_file(app: MLApp) -> None:
    app.upload.run_button.click()
    assert app.upload.status.text.startswith("Choose a file first")


# ---- editor -----------------------------------------------------------------------------


def test_editor_offers_classifiers_and_typed_params(app: MLApp) -> None:
    ed = app.editor
    assert ed.kind.value == "classifier"
    assert "RandomForestClassifier" in ed.cls.options
    assert "LinearRegression" not in ed.cls.options
    assert ed.cls.value == "LogisticRegression"
    assert isinstance(ed.params["C"], widgets.FloatText)
    assert isinstance(ed.params["fit_intercept"], widgets.Checkbox)
    assert isinstance(ed.params["max_iter"], widgets.IntText)
    assert isinstance(ed.columns["exclude"], widgets.TagsInput)
    assert list(ed.columns["exclude"].value) == ["PassengerId", "Ticket", "Cabin", "Name"]
    assert ed.target.value == "Survived"
    assert ed.changes() == {}


def test_switch_to_random_forest_and_retrain(app: MLApp) -> None:
    before = app.summary.info["fitted"]["score"]
    ed = app.editor
    ed.cls.value = "RandomForestClassifier"
    assert "n_estimators" in ed.params and "C" not in ed.params
    ed.params["n_estimators"].value = 10
    ed.retrain_button.click()
    app.wait()
    assert ed.status.kind == "ok", ed.status.text
    info = app.summary.info
    assert info["model"] == "RandomForestClassifier"
    assert info["fitted"]["model"] == "RandomForestClassifier"
    assert info["fitted"]["params"]["n_estimators"] == 10
    assert info["stale"] is False
    assert 'class="mlwidget-class">RandomForestClassifier<' in app.summary.html.value
    assert info["fitted"]["score"] != before
    assert fmt_num(info["fitted"]["score"]) in app.summary.html.value
    # the editor shows the new configuration, the forest has importances
    assert ed.cls.value == "RandomForestClassifier" and ed.params["n_estimators"].value == 10
    assert "importance" in app.summary.images


def test_apply_stages_and_summary_says_stale(app: MLApp) -> None:
    ed = app.editor
    assert ed.params["class_weight"].value == "none"
    ed.params["class_weight"].value = "balanced"
    ed.params["C"].value = 0.5
    ed.columns["exclude"].value = ["PassengerId", "Ticket", "Cabin", "Name", "Fare"]
    ed.apply_button.click()
    assert ed.status.kind == "ok", ed.status.text
    assert app.summary.info["stale"] is True
    assert 'data-stale="true"' in app.summary.html.value
    assert app.summary.info["params"]["C"] == 0.5
    assert app.summary.info["params"]["class_weight"] == "balanced"
    assert "Fare" in app.model.options["exclude"]
    assert "Fare" in app.predict.inputs  # the fitted model keeps serving until a retrain


def test_invalid_parameter_shows_sklearn_message(app: MLApp) -> None:
    ed = app.editor
    ed.params["C"].value = -1
    ed.apply_button.click()
    assert ed.status.kind == "error"
    assert "The 'C' parameter of LogisticRegression must be" in ed.status.text
    assert "Traceback" not in ed.status.text
    assert app.summary.info["params"]["C"] == 1.0  # nothing was staged


def test_retrain_runs_in_background(app: MLApp, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    model = app.model
    real = model.retrain

    ran_on: list[str] = []

    def slow_retrain(*args, **kwargs):
        ran_on.append(threading.current_thread().name)
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "retrain", slow_retrain)
    before = {t.ident for t in threading.enumerate()}  # (earlier tests' jobs may still run)
    app.editor.retrain_button.click()  # returns at once: the kernel stays responsive
    try:
        assert app.runner.busy
        assert app.editor.retrain_button.disabled and app.upload.run_button.disabled
        assert app.editor.progress.layout.visibility == "visible"
        assert app.editor.status.kind == "busy"
        assert app.predict.predict() in (0, 1)  # other forms keep working
        # the app's one worker thread runs the task; no second thread per task watches it:
        # the threads started since the click are task threads (the process's prediction log
        # writer, and an earlier test's jobs still running on a busy machine, are not this one's)
        mine = [
            t for t in threading.enumerate()
            if t.name.startswith("mlwidget-") and t.name != "mlwidget-log"
            and (t.ident not in before or t.name.startswith("mlwidget-task"))
        ]  # fmt: skip
        assert all(t.name.startswith("mlwidget-task") for t in mine), [t.name for t in mine]
    finally:
        release.set()
    app.wait()
    assert ran_on and ran_on[0].startswith("mlwidget-task"), ran_on
    assert not app.editor.retrain_button.disabled and not app.upload.run_button.disabled
    assert app.editor.progress.bar_style == "success"
    assert app.editor.status.kind == "ok"


def test_training_errors_are_readable(app: MLApp, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args, **kwargs):
        raise BadRequest("Column 'Survived' has one value only; add rows with another value.")

    monkeypatch.setattr(app.model, "retrain", failing)
    app.editor.retrain_button.click()
    app.wait()
    assert app.editor.status.kind == "error"
    assert app.editor.status.text == (
        "Column 'Survived' has one value only; add rows with another value."
    )
    assert app.editor.progress.bar_style == "danger"
    assert not app.editor.retrain_button.disabled

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(app.model, "retrain", broken)
    app.editor.retrain_button.click()
    app.wait()
    assert app.editor.status.text == "Unexpected error (RuntimeError): boom"


# ---- summary ----------------------------------------------------------------------------


def test_summary_of_a_classifier(app: MLApp) -> None:
    s = app.summary
    assert s.info["model"] == "LogisticRegression"
    html = s.html.value
    assert 'class="mlwidget-class">LogisticRegression<' in html
    assert 'class="mlwidget-rows">891<' in html
    assert 'data-stale="false"' in html
    assert s.images["importance"].startswith(PNG)
    assert s.images["confusion"].startswith(PNG)
    assert s.importance_image.value == s.images["importance"]
    title, names, values = importance(app.model.pipeline, app.model.estimator)
    assert title == "Coefficients"
    assert "Sex = male" in names and len(names) == len(values)
    assert "Pclass = 3" in names  # a clean label, not "Pclass_3.0"
    assert not any("__" in n or n.endswith(".0") for n in names), names


def test_summary_of_a_regressor(store_dir: Path) -> None:
    model = MLModel(
        "weight",
        data=str(NOTEBOOKS / "weight.csv"),
        model={"class": "LinearRegression", "target_col": "weight"},
        store=store_dir,
    )
    ui = build_app(model)
    assert ui.editor.kind.value == "regressor"
    assert "LinearRegression" in ui.editor.cls.options
    assert "LogisticRegression" not in ui.editor.cls.options
    assert ui.upload.metric.options[1] == "r2"
    assert ui.summary.images["importance"].startswith(PNG)
    assert ui.summary.images["predicted_vs_actual"].startswith(PNG)
    assert "confusion" not in ui.summary.images
    _, names, _ = importance(model.pipeline, model.estimator)
    assert set(names) == {"male", "age", "height"}


def test_tab_switch_rereads_the_store_but_keeps_pending_edits(app: MLApp, store_dir: Path) -> None:
    other = MLModel.open("titanic", store=store_dir)
    other.configure(class_="RandomForestClassifier")  # as if REST or another notebook did it
    app.tabs.selected_index = 3
    assert app.summary.info["model"] == "RandomForestClassifier"
    assert app.summary.info["stale"] is True
    app.tabs.selected_index = 2
    assert app.editor.cls.value == "RandomForestClassifier"
    app.editor.params["n_estimators"].value = 7
    app.tabs.selected_index = 0
    app.tabs.selected_index = 2
    assert app.editor.params["n_estimators"].value == 7


# ---- tabs built when first opened -------------------------------------------------------


def test_tabs_are_built_when_first_opened(app: MLApp) -> None:
    # what the page holds, read through the Tab only (app.summary etc. would build the form)
    panes = app.tabs.children
    assert app.tabs.selected_index == 0
    assert any(isinstance(w, PredictForm) for w in descendants(panes[0]))  # the default tab
    forms = (UploadForm, EditorForm, SummaryPanel)
    for pane in panes[1:]:
        assert not any(isinstance(w, forms) for w in descendants(pane))
    # the summary's figures are not drawn at app build
    assert not any(isinstance(w, widgets.Image) and w.value for w in descendants(panes[3])), (
        "Summary figures were drawn before the tab was opened"
    )
    app.tabs.selected_index = 3
    panes = app.tabs.children
    summaries = [w for w in descendants(panes[3]) if isinstance(w, SummaryPanel)]
    assert len(summaries) == 1 and summaries[0] is app.summary
    pngs = [w.value for w in descendants(panes[3]) if isinstance(w, widgets.Image) and w.value]
    assert len(pngs) == 2 and all(bytes(png).startswith(PNG) for png in pngs)
    assert 'class="mlwidget-class">LogisticRegression<' in app.summary.html.value
    # opening a tab builds only that one
    assert not any(
        isinstance(w, (UploadForm, EditorForm)) for p in panes[1:3] for w in descendants(p)
    )
    app.tabs.selected_index = 2
    assert any(isinstance(w, EditorForm) for w in descendants(app.tabs.children[2]))
    assert not any(isinstance(w, UploadForm) for w in descendants(app.tabs.children[1]))


def test_unopened_tabs_are_built_fresh_and_opened_ones_refresh(
    app: MLApp, titanic_csv: Path, store_dir: Path
) -> None:
    app.tabs.selected_index = 1
    up = app.upload
    up.upload.value = file_value(titanic_csv)
    up.action.value = "append"
    up.run_button.click()
    app.wait()
    assert up.status.kind == "ok", up.status.text
    assert not app.built("Summary") and not app.built("Editor")  # nothing built behind the user
    MLModel.open("titanic", store=store_dir).configure(class_="RandomForestClassifier")
    app.tabs.selected_index = 3  # built now, from the model as it is now
    assert 'class="mlwidget-rows">1782<' in app.summary.html.value
    assert app.summary.info["model"] == "RandomForestClassifier"
    assert app.summary.info["stale"] is True
    app.tabs.selected_index = 1
    up.action.value = "retrain"
    up.run_button.click()
    app.wait()
    assert up.status.kind == "ok", up.status.text
    # the opened Summary followed the retrain; the Editor, still unopened, was left alone
    assert app.summary.info["fitted"]["model"] == "RandomForestClassifier"
    assert app.summary.info["stale"] is False
    assert not app.built("Editor")


def test_tab_opened_during_a_task_waits_for_it(
    app: MLApp, titanic_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real = app.model.retrain

    def slow_retrain(*args, **kwargs):
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(app.model, "retrain", slow_retrain)
    app.tabs.selected_index = 1
    app.upload.upload.value = file_value(titanic_csv)
    app.upload.action.value = "retrain"
    app.upload.run_button.click()
    try:
        assert app.runner.busy
        app.tabs.selected_index = 2  # built while the task runs: its buttons wait too
        assert app.editor.retrain_button.disabled and app.editor.apply_button.disabled
    finally:
        release.set()
    app.wait()
    assert app.upload.status.kind == "ok", app.upload.status.text
    assert not app.editor.retrain_button.disabled and not app.editor.apply_button.disabled


# ---- issue 15: models without code, bulk results, display -------------------------------


def test_upload_predictions_keep_the_input_and_add_marked_columns(
    app: MLApp, titanic_csv: Path
) -> None:
    up = app.upload
    up.upload.value = file_value(titanic_csv)
    up.action.value = "predict"
    assert up.proba.layout.display == ""  # a classifier: probabilities can be asked for
    up.proba.value = True
    up.run_button.click()
    app.wait()
    assert up.status.kind == "ok", up.status.text
    table = up.result
    assert list(table.columns)[:12] == list(pd.read_csv(titanic_csv).columns)
    assert list(table.columns)[12:] == ["predicted Survived", "P(0)", "P(1)", "correct"]
    assert up.results["actual"] == "Survived" and up.results["score"]["metric"] == "accuracy"
    html = up.output.value
    # the added columns are highlighted, headers and cells aligned alike
    for column in ("predicted Survived", "P(0)", "P(1)", "correct"):
        assert f'class="mlwidget-marked" title="added by the model">{column}</th>' in html
    assert '<th style="text-align:left;padding:2px 8px">Name</th>' in html
    assert '<th style="text-align:right;padding:2px 8px">Fare</th>' in html
    assert ">71.28<" in html and "71.2833" not in html  # display rounded
    score = up.results["score"]["score"]
    assert f'class="mlwidget-file-score">{fmt_num(score)}<' in html
    assert f"accuracy against 'Survived': {fmt_num(score)}" in up.status.text


def test_upload_retrain_says_which_data_it_trains_on(app: MLApp, titanic_csv: Path) -> None:
    up = app.upload
    head = pd.read_csv(titanic_csv).head(300).to_csv(index=False).encode()
    up.upload.value = file_value(head, "first300.csv")
    up.action.value = "retrain"
    labels = [label for label, _ in up.retrain_on.options]
    assert labels == [
        "Retrain on this file (replaces the stored training data)",
        "Retrain on the stored data (the file is not used)",
    ]
    assert up.run_button.description == "Retrain on this file"
    up.run_button.click()
    app.wait()
    assert up.status.kind == "ok", up.status.text
    assert "on this file (it replaces the stored training data)" in up.status.text
    assert len(app.model.data()) == 300

    up.retrain_on.value = "stored"
    assert up.run_button.description == "Retrain on the stored data"
    assert up.target.layout.display == "none"
    up.upload.value = file_value(titanic_csv)  # a file is there, but not used
    up.retrain_on.value = "stored"
    up.run_button.click()
    app.wait()
    assert up.status.kind == "ok", up.status.text
    assert "on the stored data" in up.status.text
    assert len(app.model.data()) == 300


def test_editor_kind_switch_selects_the_default_class(app: MLApp) -> None:
    ed = app.editor
    ed.kind.value = "regressor"
    assert ed.cls.value == "RandomForestRegressor"  # not ARDRegression, the first by name
    assert "n_estimators" in ed.params
    ed.kind.value = "classifier"
    assert ed.cls.value == "RandomForestClassifier"
    ed.kind.value = "clusterer"
    assert ed.cls.value == "KMeans"


def test_editor_parameters_full_names_docs_checkboxes_no_deprecated(app: MLApp) -> None:
    ed = app.editor
    assert "penalty" not in ed.params  # LogisticRegression's penalty="deprecated"
    assert isinstance(ed.params["warm_start"], widgets.Checkbox)
    tip = ed.params["C"].tooltip
    assert tip.startswith("C: Inverse of regularization strength")
    ed.cls.value = "RandomForestClassifier"
    assert isinstance(ed.params["bootstrap"], widgets.Checkbox)
    assert isinstance(ed.params["oob_score"], widgets.Checkbox)
    w = ed.params["min_impurity_decrease"]
    width = int(w.style.description_width.rstrip("px"))
    assert (
        width >= len("min_impurity_decrease") * 7
    )  # the full name shows, not "min_impurity_decrea…"
    assert "A node will be split if this split induces a decrease" in w.tooltip
    ed.kind.value = "regressor"
    ed.cls.value = "GradientBoostingRegressor"
    assert "criterion" not in ed.params  # criterion="deprecated" in scikit-learn 1.9
    # the include/exclude/cats/nums boxes have visible labels
    labels = [x.value for x in descendants(ed) if isinstance(x, widgets.HTML)]
    for name in ("include", "exclude", "cats", "nums"):
        assert any(f"<b>{name}</b>" in v for v in labels), name


def test_numbers_are_rounded_for_display() -> None:
    assert fmt_num(0.8271604938271605) == "0.8272"
    assert fmt_num(151.765) == "151.8"
    assert fmt_num(3.0) == "3"
    assert fmt_num(1234567.8) == "1234568"
    assert fmt_num(None) == "" and fmt_num(float("nan")) == ""
    assert fmt_num(12) == "12" and fmt_num("male") == "male"


def test_summary_and_predict_show_rounded_numbers(app: MLApp) -> None:
    score = app.summary.info["fitted"]["score"]
    assert f'class="mlwidget-score">{fmt_num(score)}<' in app.summary.html.value
    fare = app.predict.inputs["Fare"].value
    assert fare == float(fmt_num(fare))  # a typical value a person would type, not 14.4542...


def test_date_column_is_a_date_picker_not_a_dropdown(store_dir: Path, tmp_path: Path) -> None:
    days = pd.date_range("2024-01-01", periods=120, freq="D")
    frame = pd.DataFrame(
        {
            "day": days.strftime("%Y-%m-%d"),
            "temperature": [10 + (i % 17) for i in range(120)],
            "sales": [100 + 3 * (i % 17) + (i % 5) for i in range(120)],
        }
    )
    model = MLModel(
        "sales",
        data=frame,
        model={"class": "LinearRegression", "target_col": "sales"},
        store=store_dir,
    )
    form = build_app(model).predict
    day = form.inputs["day"]
    assert isinstance(day, widgets.DatePicker)  # not a 120-item dropdown
    assert not any(isinstance(w, widgets.Dropdown) for w in form.inputs.values())
    day.value = datetime.date(2024, 2, 3)
    assert form.row()["day"] == "2024-02-03"  # written as the training data wrote dates
    form.button.click()
    assert form.status.kind == "", form.status.text
    assert isinstance(form.prediction, float)


def test_new_model_from_iris_and_weight_without_code(store_dir: Path) -> None:
    board = Dashboard(store=store_dir)
    assert board.picker.options == ("(no models yet)",) and board.app is None
    form = board.new_form
    assert form.layout.display == ""  # an empty store opens the New model form
    form.upload.value = file_value(NOTEBOOKS / "iris.csv")
    assert "5 columns" in form.file_info.value
    assert "sepal_length" in form.preview.value and 'data-rows="' in form.preview.value
    assert form.target.value == "species"
    assert form.kind.value == "classifier"
    assert "species holds 3 distinct text values, so this is classification" in form.reason.value
    assert form.cls.value == "RandomForestClassifier"
    assert form.name.value == "iris"
    form.create_button.click()
    board.wait()
    assert form.status.kind == "ok", form.status.text
    assert form.status.text.startswith("Created iris: RandomForestClassifier predicting species")
    assert board.picker.value == "iris" and board.app.model.name == "iris"
    iris = MLModel.open("iris", store=store_dir)
    assert iris.info()["fitted"]["model"] == "RandomForestClassifier"
    predict = board.app.predict
    predict.set_row(
        {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.5, "petal_width": 2}
    )
    predict.button.click()
    assert predict.prediction == "virginica"

    board.toggle_new(True)
    form.upload.value = file_value(NOTEBOOKS / "weight.csv")
    assert form.target.value == "weight" and form.kind.value == "regressor"
    assert "so this is regression" in form.reason.value
    assert form.cls.value == "RandomForestRegressor"
    form.target.value = "male"  # another target: the kind and its reason follow
    assert form.kind.value == "classifier" and "whole numbers" in form.reason.value
    form.target.value = "weight"
    assert form.cls.value == "RandomForestRegressor"
    form.create_button.click()
    board.wait()
    assert form.status.kind == "ok", form.status.text
    assert board.picker.options == ("iris", "weight") and board.app.model.name == "weight"
    assert board.app.model.kind == "regressor"
    board.app.predict.button.click()
    assert isinstance(board.app.predict.prediction, float)
    board.picker.value = "iris"  # the picker swaps the app
    assert board.app.model.name == "iris"


def test_new_model_refuses_bad_input_and_keeps_nothing(store_dir: Path) -> None:
    board = Dashboard(store=store_dir)
    form = board.new_form
    form.create_button.click()
    assert form.status.text.startswith("Choose a file first")
    form.upload.value = file_value(b"\x00\x01 junk", "junk.bin", "application/octet-stream")
    assert form.status.kind == "error" and "Traceback" not in form.status.text
    form.upload.value = file_value(NOTEBOOKS / "iris.csv")
    form.name.value = "bad name/../x"
    form.create_button.click()
    assert form.status.kind == "error"
    assert list_models(store_dir) == []
    # a training that fails (text predicted as numbers) leaves no half-made model behind
    form.name.value = "iris"
    form.kind.value = "regressor"
    form.create_button.click()
    board.wait()
    assert form.status.kind == "error", form.status.text
    assert "Traceback" not in form.status.text
    assert list_models(store_dir) == []
    form.kind.value = "classifier"
    form.create_button.click()
    board.wait()
    assert form.status.kind == "ok", form.status.text
    form.upload.value = file_value(NOTEBOOKS / "iris.csv")
    assert form.name.value == "iris-2"  # a free name is suggested
    form.name.value = "iris"
    form.create_button.click()
    assert form.status.kind == "error" and "exists already" in form.status.text
    assert list_models(store_dir) == ["iris"]


def test_new_model_name_is_the_servers_suggestion_for_a_long_odd_file_name(
    store_dir: Path,
) -> None:
    """The form's suggestion is mlwidget.names.suggested_name (the listing page's too): a long
    file name is cut to the store's 128 characters, not 100, and stays under it with "-2"."""
    from mlwidget.names import suggested_name
    from mlwidget.store import MAX_NAME, Store

    board = Dashboard(store=store_dir)
    form = board.new_form
    filename = "Q1 sales (final)..." + "x" * 200 + ".csv"
    form.upload.value = file_value(NOTEBOOKS / "iris.csv", filename)
    expected = "Q1-sales-final-." + "x" * (MAX_NAME - 16)
    assert form.name.value == expected == suggested_name(filename, Store(store_dir))
    MLModel(expected.upper(), store=store_dir, model={"class": "LogisticRegression"})
    form.upload.value = ()
    form.upload.value = file_value(NOTEBOOKS / "iris.csv", filename)
    assert form.name.value == expected[: MAX_NAME - 2] + "-2"  # its look-alike is taken


def test_new_model_training_can_be_cancelled_and_keeps_nothing(
    store_dir: Path, tmp_path: Path
) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    big = pd.DataFrame(rng.normal(size=(2_000, 12)), columns=[f"x{i}" for i in range(12)])
    big["amount"] = big.sum(axis=1) + rng.normal(size=len(big))
    board = Dashboard(store=store_dir)
    form = board.new_form
    form.upload.value = file_value(big.to_csv(index=False).encode(), "big.csv")
    assert form.target.value == "amount", form.status.text
    assert form.cls.value == "RandomForestRegressor"
    # the training job waits at its first report from the fit until it has been cancelled
    with Pause("fit") as pause:
        form.create_button.click()
        deadline = time.monotonic() + 120  # a bound, not a measurement
        while not (pause.reached.is_set() and form.runner.job is pause.job):
            assert time.monotonic() < deadline, form.status.text
            time.sleep(0.05)
        assert pause.job.status == "running"
        assert form.cancel_button.layout.display == ""  # Cancel shows while the job runs
        assert form.create_button.disabled
        form.cancel_button.click()
        assert pause.holding  # the cancel came while the job was fitting
    board.wait()
    assert form.status.kind == "error", form.status.text
    assert "cancel" in form.status.text.lower()
    assert list_models(store_dir) == []  # the half-made model is gone
    assert board.app is None and not form.create_button.disabled
