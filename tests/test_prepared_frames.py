"""mlwidget/prepared_frames.py: a fit of the same rows under the same column options uses the
training frame its process prepared before (a retrain after a change of class or parameters,
the cross-validation after a retrain); changed rows or column options are prepared again, and
what a fit gets is its own copy. Also the training score's accuracy (training.accuracy)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS
from sklearn.metrics import accuracy_score

from mlwidget import MLModel, prepared_frames, training

OPTIONS = {**GUIDE_OPTIONS, "class": "LogisticRegression"}


@pytest.fixture
def table(titanic_csv: Path) -> pd.DataFrame:
    prepared_frames.clear()
    return pd.read_csv(titanic_csv)


def fit(table: pd.DataFrame, **changes) -> training.Fitted:
    return training.fit({**OPTIONS, **changes}, table, known_hash=training.data_hash(table))


def coefficients(fitted: training.Fitted) -> np.ndarray:
    return fitted.pipeline.steps[-1][1].coef_


def test_a_refit_with_other_parameters_uses_the_kept_frame_and_fits_the_same(table) -> None:
    first = fit(table)
    before = prepared_frames.counts()
    again = fit(table, params={"C": 0.5})
    after = prepared_frames.counts()
    assert (after["hits"], after["misses"]) == (before["hits"] + 1, before["misses"])
    assert again.features == first.features
    assert again.fitted["rows"] == first.fitted["rows"]
    prepared_frames.clear()  # the same fit from a frame prepared afresh
    fresh = fit(table, params={"C": 0.5})
    assert prepared_frames.counts()["misses"] == after["misses"] + 1
    np.testing.assert_array_equal(coefficients(again), coefficients(fresh))
    assert again.fitted["score"] == fresh.fitted["score"]


def test_changed_rows_or_column_options_are_prepared_again(table) -> None:
    first = fit(table)
    grown = pd.concat([table, table.tail(1).assign(Fare=1234.5)], ignore_index=True)
    misses = prepared_frames.counts()["misses"]
    assert fit(grown).fitted["rows"] == first.fitted["rows"] + 1
    narrower = fit(table, exclude=[*OPTIONS["exclude"], "Fare"])
    assert [f["name"] for f in narrower.features] == [
        f["name"] for f in first.features if f["name"] != "Fare"
    ]
    assert prepared_frames.counts()["misses"] == misses + 2


def test_what_a_fit_gets_is_its_own_copy(table) -> None:
    fingerprint = training.data_hash(table)
    hits = prepared_frames.counts()["hits"]
    X, y, features, warns = prepared_frames.training_frame(
        table, OPTIONS, "classifier", fingerprint
    )
    expected = (X.copy(), y.copy(), copy.deepcopy(features), list(warns))
    X.iloc[0, 0] = -1
    y.iloc[0] = 99
    features[0]["categories"].append("changed")
    features[0]["name"] = "changed"
    warns.append("changed")
    X2, y2, features2, warns2 = prepared_frames.training_frame(
        table, OPTIONS, "classifier", fingerprint
    )
    pd.testing.assert_frame_equal(X2, expected[0])
    pd.testing.assert_series_equal(y2, expected[1])
    assert features2 == expected[2] and warns2 == expected[3]
    assert prepared_frames.counts()["hits"] == hits + 1


def test_large_frames_and_fits_without_a_fingerprint_are_not_kept(
    table, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepared_frames, "MAX_CELLS", 100)
    before = prepared_frames.counts()
    fit(table)
    training.fit(OPTIONS, table)  # no known hash: the fit computes one, and looks it up
    prepared_frames.training_frame(table, OPTIONS, "classifier", None)
    after = prepared_frames.counts()
    assert (after["hits"], after["misses"]) == (before["hits"], before["misses"] + 2)
    assert after["kept"] == 0


def test_a_worker_process_prepares_again_after_an_append_or_an_option_change(
    store_dir: Path, titanic_csv: Path
) -> None:
    """The worker processes keep frames across jobs: what they fit must follow the model."""
    model = MLModel(
        "titanic", data=str(titanic_csv), store=store_dir, executor="process", **GUIDE_OPTIONS
    )
    rows = model.info()["fitted"]["rows"]
    model.configure(params={"C": 0.5})
    assert model.retrain()["rows"] == rows
    model.configure(exclude=[*GUIDE_OPTIONS["exclude"], "Fare"])
    model.retrain()
    assert "Fare" not in [f["name"] for f in model.info()["schema"]]
    row = pd.read_csv(titanic_csv).head(1).assign(Fare=1234.5, Age=1.5)
    model.configure(exclude=GUIDE_OPTIONS["exclude"])
    model.append(row)
    assert model.retrain()["rows"] == rows + 1
    assert "Fare" in [f["name"] for f in model.info()["schema"]]


@pytest.mark.parametrize(
    "labels",
    [
        [0, 1, 1, 0, 1],
        ["yes", "no", "no", "yes", "maybe"],
        [True, False, True, True, False],
        [1.0, 2.0, 1.0, 1.0, 3.0],
        pd.array(["a", "b", "a", "b", "b"], dtype="string"),
    ],
)
def test_the_training_accuracy_is_scikit_learns(labels) -> None:
    y = pd.Series(labels)
    predicted = np.asarray(y)[[1, 1, 2, 3, 0]]
    assert training.accuracy(y, predicted) == accuracy_score(y, predicted)
    assert training.accuracy(y, np.asarray(y)) == 1.0


def test_new_rows_are_stored_under_the_fingerprint_their_fit_computed(
    store_dir: Path, titanic_csv: Path
) -> None:
    """A retrain with new rows hashes them once (in the worker) and stores that fingerprint
    beside them: the next fit of the stored rows looks its frame up by it."""
    model = MLModel(
        "titanic", data=str(titanic_csv), store=store_dir, executor="process", **GUIDE_OPTIONS
    )
    rows = pd.read_csv(titanic_csv).sample(500, random_state=1)
    model.retrain(rows)
    state = model.snapshot().state
    assert state["data_hash"] == training.data_hash(model.data()) == state["fitted"]["data_hash"]
    assert state["data_rows"] == 500 and not model.info().get("stale_reasons")


def test_values_the_fingerprint_cannot_tell_apart_are_prepared_again(table) -> None:
    """data_hash hashes Python objects by their text: True and "True" alike. The key tells a
    column of booleans from a column of text, so a fit of the text gets text labels."""
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [True, False, True, False]})
    text = frame.assign(y=frame["y"].astype(str).astype(object))
    assert training.data_hash(frame.astype({"y": object})) == training.data_hash(text)
    options = {"target_col": "y"}
    booleans = frame.astype({"y": object})
    first = prepared_frames.training_frame(booleans, options, "classifier", "same")
    misses = prepared_frames.counts()["misses"]
    second = prepared_frames.training_frame(text, options, "classifier", "same")
    assert prepared_frames.counts()["misses"] == misses + 1
    assert list(first[1]) == [True, False, True, False]
    assert list(second[1]) == ["True", "False", "True", "False"]
