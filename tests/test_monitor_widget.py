"""The dashboard after the model is served (issue 29), driven in pure Python as ipywidgets' own
tests do (assign ``.value``s, click buttons, read what the forms show): feedback under the
Predict tab's answer goes through ``model.feedback`` and is stored as said (read back from the
feedback files and the log); the Monitor tab shows the traffic, the live metric, the drift of a
shifted feature (highlighted) and a shadow version side by side, and says how to start when
there is nothing to show."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER

from mlwidget import MLModel, feedback, predlog_read
from mlwidget.display import fmt_num
from mlwidget.widgets import build_app
from mlwidget.widgets.app import TITLES
from mlwidget.widgets.monitor_view import shadow_html

PNG = b"\x89PNG"
FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]


@pytest.fixture
def titanic(store_dir: Path, titanic_csv: Path) -> MLModel:
    return MLModel("titanic", data=str(titanic_csv), model=dict(GUIDE_OPTIONS), store=store_dir)


def passengers(titanic_csv: Path, n: int) -> pd.DataFrame:
    return pd.read_csv(titanic_csv).sample(n, random_state=0)


def drift_rows(html: str) -> dict[str, str]:
    """The drift table's rows, by feature: the row's opening tag (its class says a warning)."""
    return {
        row.split('data-feature="', 1)[1].split('"', 1)[0]: row.split(">", 1)[0]
        for row in html.split("<tr ")[1:]
        if "data-feature=" in row.split(">", 1)[0]
    }


def test_feedback_in_the_predict_tab_is_stored_and_the_monitor_tab_shows_it(
    titanic: MLModel, store_dir: Path, titanic_csv: Path
) -> None:
    titanic.configure(log_predictions=True)
    app = build_app(titanic)
    form = app.predict
    form.set_row(GUIDE_PASSENGER)
    form.predict()
    assert form.prediction == 0
    (pid,) = form.prediction_ids
    box = form.feedback
    assert box.controls.layout.display is None and box.hint.value == ""  # shown, no hint
    assert set(box.actual.options) == {"0", "1"}  # the classes, offered

    # an actual value the model does not know: its error, nothing stored
    box.actual.value = "7"
    box.wrong.click()
    assert box.status.kind == "error"
    assert "to be a class of model 'titanic' (0, 1)" in box.status.text
    assert feedback.read(store_dir / "titanic").empty

    # "wrong, the actual value was 1", with a note: confirmed and stored as said
    box.actual.value = "1"
    box.note.value = "survived after all"
    box.wrong.click()
    assert box.status.kind == "ok", box.status.text
    assert box.status.text == (
        f"Stored for prediction {pid}: wrong; the actual value was 1; note: survived after all."
    )
    (record,) = feedback.read(store_dir / "titanic").to_dict("records")
    assert (record["id"], record["flag"], record["note"]) == (pid, "wrong", "survived after all")
    assert json.loads(record["actual"]) == 1 and json.loads(record["prediction"]) == 0
    assert record["caller"] == "owner"
    log = predlog_read.read(titanic, predlog_read.Filters())
    logged = log[log["id"] == pid].iloc[0]
    assert logged["face"] == "widget" and json.loads(logged["input"])["Sex"] == "male"

    # traffic from Python: 300 passengers whose fares are five times the training data's
    titanic.configure(log_python=True)
    rows = passengers(titanic_csv, 300)[FEATURES]
    titanic.predict(rows.assign(Fare=rows["Fare"] * 5))
    assert not app.built("Monitor")
    app.tabs.selected_index = TITLES.index("Monitor")
    monitor = app.monitor
    assert monitor.status.kind == "", monitor.status.text
    assert 'data-records="301"' in monitor.sections["overview"].value
    assert "Fare: PSI" in monitor.sections["overview"].value  # the warning, on top
    live = monitor.sections["feedback"].value
    assert 'class="mlwidget-metric-name">accuracy<' in live
    assert 'class="mlwidget-metric-value"><b>0</b>' in live
    rows_by_feature = drift_rows(monitor.sections["drift"].value)
    assert list(rows_by_feature) == FEATURES
    warned = [f for f, tag in rows_by_feature.items() if "mlwidget-drift-warn" in tag]
    assert warned == ["Fare"]
    assert "background:#fdecea" in rows_by_feature["Fare"]
    for name in ("traffic", "latency", "predictions", "feedback", "psi", "drift-Fare"):
        assert monitor.images[name].startswith(PNG), name
    assert "drift-Sex" not in monitor.images  # only a drifting feature's distribution

    # Refresh reads again: a "right" on the next answer makes the accuracy 1 of 2
    form.set_row({**GUIDE_PASSENGER, "Sex": "female"})
    form.predict()
    form.feedback.right.click()
    assert form.feedback.status.text.endswith(": right."), form.feedback.status.text
    monitor.refresh_button.click()
    assert 'class="mlwidget-metric-value"><b>0.5</b>' in monitor.sections["feedback"].value
    assert 'data-records="302"' in monitor.sections["overview"].value


def test_the_tabs_say_how_to_start_when_nothing_is_logged(titanic: MLModel) -> None:
    app = build_app(titanic)
    form = app.predict
    form.predict()
    assert form.prediction is not None and form.prediction_ids == []
    assert form.feedback.controls.layout.display == "none"
    assert "model.configure(log_predictions=True)" in form.feedback.hint.value

    monitor = app.monitor
    overview = monitor.sections["overview"].value
    assert 'data-records="0"' in overview and "turn on log_predictions" in overview
    assert "No feedback yet" in monitor.sections["feedback"].value
    assert "drift" not in monitor.sections and monitor.images == {}

    titanic.configure(log_predictions=True)
    monitor.refresh_button.click()
    assert "No logged predictions in this window yet" in monitor.sections["overview"].value
    form.predict()  # now logged: feedback is offered, the hint goes
    assert len(form.prediction_ids) == 1
    assert form.feedback.controls.layout.display is None and form.feedback.hint.value == ""
    form.feedback.send.click()  # the actual value alone, but none typed
    assert form.feedback.status.text == "Type the actual value first."
    monitor.refresh_button.click()
    assert 'data-records="1"' in monitor.sections["overview"].value


def test_monitor_tab_shows_a_shadow_version_side_by_side(
    titanic: MLModel, titanic_csv: Path
) -> None:
    titanic.configure(C=0.05)
    titanic.retrain()  # version 2 serves; version 1 answers in its shadow
    titanic.configure(log_predictions=True, log_python=True, shadow=1)
    rows = passengers(titanic_csv, 120)
    titanic.predict(rows[FEATURES])
    ids = titanic.last_prediction_ids
    labels = [{"id": i, "actual": int(a)} for i, a in zip(ids, rows["Survived"], strict=True)]
    titanic.feedback(labels[:60])
    expected = titanic.monitor()["shadow"]
    assert expected["version"] == 1 and expected["serving_version"] == 2

    monitor = build_app(titanic).monitor
    html = monitor.sections["shadow"].value
    assert "serving (version 2)" in html and "shadow (version 1)" in html
    for side in ("serving", "candidate"):
        assert f">{fmt_num(expected[side]['value'])}<" in html, side
    assert f"{expected['rows']} rows answered by both" in html
    assert f"they agree on {fmt_num(expected['agreement'] * 100, 3)}% of them" in html

    # any field may be missing: still a table, with blanks
    sparse = shadow_html({"version": 3, "rows": None, "agreement": None, "serving": None,
                          "candidate": {"metric": None, "value": None}})  # fmt: skip
    assert "shadow (version 3)" in sparse and "serving (no version)" in sparse
    assert "? rows answered by both" in sparse and "agree" not in sparse
