"""Versions, rollback and honest scores, from Python and over REST (a real server sharing the
store with this process, as a kernel does)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import joblib
import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, ROOT
from rest_helpers import assert_clean_error, call, stored

from mlwidget import BadRequest, MLModel, NotFound

# versions carry cross-validated scores: fits here cross-validate, as by default
pytestmark = pytest.mark.cross_validates

CLASSES = [
    ("LogisticRegression", {}),
    ("RandomForestClassifier", {"n_estimators": 30, "random_state": 0}),
    ("GradientBoostingClassifier", {"n_estimators": 30, "random_state": 0}),
]


@pytest.fixture
def rows(titanic_csv: Path) -> pd.DataFrame:
    return pd.read_csv(titanic_csv)


@pytest.fixture
def three(store_dir: Path, rows: pd.DataFrame) -> MLModel:
    """A model retrained with three classes: versions 1, 2, 3."""
    # no class and no target: stored untrained (a target alone would train a default class)
    options = {k: v for k, v in GUIDE_OPTIONS.items() if k not in ("class", "target_col")}
    model = MLModel("titanic", data=rows, store=store_dir, executor="thread", **options)
    assert model.versions() == [] and model.version is None
    for cls, params in CLASSES:
        model.configure({"class": cls, "target_col": "Survived", **params})
        answer = model.retrain()
        assert answer["on"] == "training" and answer["cv_score"]["on"] == "5-fold cv"
    return model


def test_three_retrains_are_three_versions_and_rollback_serves_the_first(three, rows):
    listed = three.versions()
    assert [v["version"] for v in listed] == [3, 2, 1]  # newest first
    assert [v["class"] for v in listed] == [c for c, _ in reversed(CLASSES)]
    assert [v["serving"] for v in listed] == [True, False, False]
    assert len({v["score"]["value"] for v in listed}) == 3
    for v in listed:
        assert v["score"]["on"] == "training" and v["rows"] == 674 and v["data_rows"] == 891
        assert v["cv_score"]["folds"] == 5 and 0.6 < v["cv_score"]["value"] < 0.9
        assert v["libraries"]["scikit-learn"] and v["data_hash"] == listed[0]["data_hash"]
    # the forest's training score flatters it; the cross-validated one does not
    forest = listed[1]
    assert forest["score"]["value"] - forest["cv_score"]["value"] > 0.1

    first = MLModel.open("titanic", store=three.store)
    three.rollback(1)
    assert three.version == 1 and first.version == 1
    info = three.info()
    assert info["version"] == 1 and info["model"] == "LogisticRegression" and not info["stale"]
    assert info["fitted"]["model"] == "LogisticRegression"
    expected = joblib.load(io.BytesIO(three.model_bytes(1))).predict_proba(
        three.data()[[f["name"] for f in three.features]]
    )
    got = three.predict_proba(three.data())
    assert [round(p[1], 12) for p in got] == [round(p, 12) for p in expected[:, 1]]
    assert [v["version"] for v in three.versions()] == [3, 2, 1]  # no new entry
    assert [v["serving"] for v in three.versions()] == [False, False, True]
    # a retrain now makes version 4, of version 1's configuration
    assert three.retrain()["version"] == 4
    assert three.versions()[0]["class"] == "LogisticRegression"


def test_keep_versions_drops_the_oldest_only(three, rows):
    three.configure(keep_versions=2)
    three.retrain()
    assert [v["version"] for v in three.versions()] == [4, 3]
    three.rollback(3)  # the oldest kept serves: a retrain drops it, not 4
    three.retrain()
    assert [v["version"] for v in three.versions()] == [5, 4]
    three.rollback(4)
    three.configure(keep_versions=1)
    three.retrain()  # 6 serves, and only it is kept
    assert [v["version"] for v in three.versions()] == [6]
    files = sorted(p.name for p in three.store.dir("titanic").glob("model-*"))
    assert len(files) == 1  # dropped versions' files are gone
    with pytest.raises(NotFound, match="no version 1; it keeps 6"):
        three.rollback(1)
    with pytest.raises(BadRequest, match="keep_versions"):
        three.configure(keep_versions=0)


def test_download_of_an_old_version_loads_and_predicts(three, rows, tmp_path):
    path = three.download(tmp_path / "v2.joblib", version=2)
    pipeline = joblib.load(path)
    assert type(pipeline[-1]).__name__ == "RandomForestClassifier"
    assert len(pipeline.predict(rows[[f["name"] for f in three.features]])) == 891
    with pytest.raises(BadRequest, match="version number"):
        three.model_bytes("latest")


def test_a_failed_retrain_creates_no_version(three, rows, store_dir):
    before = stored(store_dir)
    with pytest.raises(BadRequest):
        three.retrain(rows.drop(columns=["Survived"]))
    with pytest.raises(BadRequest):
        three.retrain(rows, target_col="Nope")
    assert stored(store_dir) == before
    assert [v["version"] for v in three.versions()] == [3, 2, 1]


def test_row_counts_are_explained(three):
    info = three.info()
    assert info["rows"] == 891
    assert info["rows_explained"].startswith("Fit on 674 of 891 stored rows: 217 were left out")


def test_a_model_fit_under_other_libraries_warns_and_checks_the_fast_path(three, rows, caplog):
    state_path = three.store.dir("titanic") / "state.json"
    import json

    state = json.loads(state_path.read_text())
    state["fitted"]["libraries"]["scikit-learn"] = "1.8.0"
    state_path.write_text(json.dumps(state))
    model = MLModel.open("titanic", store=three.store)
    with caplog.at_level("WARNING", logger="mlwidget"):
        assert model.predict(rows.head(3)) == three.predict(rows.head(3))  # loads it
        info = model.info()
    assert any("scikit-learn 1.8.0 (here " in w for w in info["warnings"])
    assert any("scikit-learn 1.8.0" in r.getMessage() for r in caplog.records)
    # the fast path was checked against the pipeline before serving (and agrees here)
    assert info["predict_path"] and info["predict_path"].startswith("fast")


SWITCHER = """
import sys
from mlwidget import MLModel
model = MLModel.open("titanic", store=sys.argv[1])
print("ready", flush=True)
while True:
    model.rollback(1)
    model.rollback(2)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_mid_rollback_leaves_one_version_serving(three, rows, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    script = tmp_path / "switch.py"
    script.write_text(textwrap.dedent(SWITCHER))
    for delay in (0.3, 0.55, 0.8, 1.1):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(three.store.root)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        model = MLModel.open("titanic", store=three.store.root)
        assert model.version in (1, 2)
        assert model.info()["fitted"]["version"] == model.version
        assert len(model.predict(rows.head(5))) == 5
        assert [v["version"] for v in model.versions()] == [3, 2, 1]


class TestRest:
    @pytest.fixture
    def jp_server_config(self, store_dir: Path) -> dict:
        return {
            "ServerApp": {"jpserver_extensions": {"mlwidget_server": True}},
            "MLWidgetApp": {"store_dir": str(store_dir), "executor": "thread"},
        }

    async def test_versions_and_rollback_over_rest_agree_with_python(self, jp_fetch, three, rows):
        reply = await call(jp_fetch, "mlhandler", "titanic", params={"_versions": ""})
        assert reply.code == 200 and [v["version"] for v in reply.json()] == [3, 2, 1]
        assert (await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})).json()[
            "version"
        ] == 3

        # the kernel rolls back: the server serves version 1 on its next request
        three.rollback(1)
        info = (await call(jp_fetch, "mlhandler", "titanic", params={"_model": ""})).json()
        assert info["version"] == 1 and info["fitted"]["model"] == "LogisticRegression"

        # the server rolls back: the kernel sees it
        reply = await call(
            jp_fetch,
            "mlhandler",
            "titanic",
            method="POST",
            params={"_action": "rollback", "version": "2"},
        )
        assert reply.code == 200, reply.text
        assert reply.json()["version"] == 2 and reply.json()["previous"] == 1
        assert three.version == 2 and three.info()["model"] == "RandomForestClassifier"

        # a retrain over REST makes version 4, seen by both
        reply = await call(
            jp_fetch, "mlhandler", "titanic", method="POST", params={"_action": "retrain"}
        )
        assert reply.json()["version"] == 4 and reply.json()["cv_score"]["on"] == "5-fold cv"
        assert three.version == 4

        # download any version
        reply = await call(
            jp_fetch, "mlhandler", "titanic", params={"_download": "", "version": "1"}
        )
        assert reply.code == 200
        assert 'filename="titanic-v1.joblib"' in reply.headers["Content-Disposition"]
        assert type(joblib.load(io.BytesIO(reply.body))[-1]).__name__ == "LogisticRegression"

    async def test_bad_rollbacks_are_clear_and_change_nothing(self, jp_fetch, three, store_dir):
        before = stored(store_dir)
        cases = [
            ({"_action": "rollback"}, 400, "version"),
            ({"_action": "rollback", "version": "two"}, 400, "version number"),
            ({"_action": "rollback", "version": "9"}, 404, "no version 9"),
        ]
        for params, status, words in cases:
            reply = await call(jp_fetch, "mlhandler", "titanic", method="POST", params=params)
            assert_clean_error(reply, status, words)
        reply = await call(
            jp_fetch, "mlhandler", "titanic", params={"_download": "", "version": "9"}
        )
        assert_clean_error(reply, 404, "no version 9")
        assert stored(store_dir) == before


def test_the_history_tab_shows_versions_and_rolls_back(three, rows):
    from mlwidget.widgets import build_app

    app = build_app(three)
    history = app.history
    assert history.table.value.count('class="mlwidget-version-row"') == 3
    assert 'data-version="3" data-serving=true' in history.table.value
    assert (
        "RandomForestClassifier" in history.table.value and "n_estimators=30" in history.table.value
    )
    assert bytes(history.plot.value).startswith(b"\x89PNG")
    # the diff of the two newest versions names what differs
    assert (
        "GradientBoostingClassifier" in history.diff.value
        and "RandomForestClassifier" in history.diff.value
    )

    history.choice.value = 1
    history.rollback_button.click()
    assert history.confirmation.layout.display == ""  # asks first: nothing changed yet
    assert three.version == 3 and "version 1 (LogisticRegression" in history.question.value
    history.no.click()
    assert three.version == 3 and history.confirmation.layout.display == "none"
    history.rollback_button.click()
    history.yes.click()
    assert three.version == 1
    assert (
        history.status.kind == "ok"
        and "Version 1 (LogisticRegression) serves again" in history.status.text
    )
    assert 'data-version="1" data-serving=true' in history.table.value
    # any version exports for MLflow from the tab
    history.choice.value = 2
    assert history.export()
    assert 'download="titanic-v2-mlflow.zip"' in history.download.value
    # the other tabs show the rolled-back model
    assert "LogisticRegression" in app.summary.html.value
    assert app.editor.cls.value == "LogisticRegression"


def test_the_summary_labels_its_scores_and_plots_out_of_fold(three):
    from mlwidget.widgets import build_app

    summary = build_app(three).summary
    html = summary.html.value
    assert "on the 674 training rows" in html and "5-fold cv" in html
    assert "mlwidget-cv-score" in html and "Fit on 674 of 891 stored rows" in html
    assert summary.images["confusion"].startswith(b"\x89PNG")
    assert "Out-of-fold predictions (5-fold cv)" in summary.performance_caption.value


def test_cv_folds_sets_or_turns_off_the_cross_validation(three):
    three.configure(cv_folds=3)
    assert three.retrain()["cv_score"]["on"] == "3-fold cv"
    three.configure(cv_folds=0)
    answer = three.retrain()
    assert answer["cv_score"] is None
    assert not any("cross-validated" in w for w in answer["warnings"])  # chosen, not a problem
    with pytest.raises(BadRequest, match="cv_folds"):
        three.configure(cv_folds=1)


def test_a_large_table_is_scored_on_a_sample_and_says_so(three, rows, monkeypatch):
    from sklearn.metrics import accuracy_score

    from mlwidget import training
    from mlwidget.widgets import build_app

    monkeypatch.setattr(training, "SCORE_ROWS", 300)  # the thread executor: this process
    three.configure(cv_folds=0)
    answer = three.retrain()
    sample = "training (a random sample of 300 of 674 rows)"
    assert answer["on"] == sample and answer["rows"] == 674
    assert three.versions()[0]["score"]["on"] == sample
    assert "a random sample of 300 of the 674 training rows" in build_app(three).summary.html.value
    # the score is the model's accuracy on 300 of its training rows: neither all nor none
    fitted = three.pipeline
    X = rows.drop(columns=["Survived"])
    every = accuracy_score(rows["Survived"], fitted.predict(X))
    assert 0.5 < answer["score"] <= 1 and answer["score"] != every
    monkeypatch.setattr(training, "SCORE_ROWS", 20_000)
    assert three.retrain()["on"] == "training"
