"""training.fit: options and a table in, a fitted pipeline out; nothing read or written."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER, NOTEBOOKS

from mlwidget import BadRequest, MLModel, options, training

TITANIC = pd.read_csv(NOTEBOOKS / "titanic.csv")


def guide_options(**changes) -> dict:
    opts, params, _ = options.split({**GUIDE_OPTIONS, **changes})
    return {**options.DEFAULTS, **options.clean(opts), "params": params}


def test_fit_is_pure_and_gives_what_a_model_commits(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = TITANIC.copy()
    result = training.fit(guide_options(), table, metric="f1_weighted")
    assert os.listdir(tmp_path) == []  # wrote nothing
    pd.testing.assert_frame_equal(table, TITANIC)  # and left its input alone
    assert result.pipeline.predict(pd.DataFrame([GUIDE_PASSENGER])).tolist() == [0]
    assert result.fitted["model"] == "LogisticRegression" and result.fitted["rows"] > 600
    assert {f["name"] for f in result.features} >= {"Sex", "Age", "Fare"}
    assert any("SibSb" in w for w in result.warnings)  # the guide's typo
    assert 0.7 < result.asked <= 1


def test_the_same_options_fit_the_same_model_as_mlmodel(store_dir):
    options_ = {**GUIDE_OPTIONS, "class": "RandomForestClassifier", "n_estimators": 5}
    m = MLModel("t", data=TITANIC, random_state=0, **options_)
    result = training.fit(m.options, TITANIC)
    rows = TITANIC.drop(columns=["Survived"]).head(50)
    assert result.pipeline.predict(rows).tolist() == m.predict(rows)


def test_a_bad_metric_fails_before_the_fit():
    with pytest.raises(BadRequest, match="scorer"):
        # (this fit would fail: SGD cannot take max_iter=10**12)
        training.fit(
            guide_options(**{"class": "SGDClassifier", "max_iter": 10**12}), TITANIC, metric="nope"
        )
