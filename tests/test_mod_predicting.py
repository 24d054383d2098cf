"""mlwidget/predicting.py and mlwidget/answer_limits.py: predictions, probabilities and results
tables from one (detached) snapshot, held to max_table_cells before they are built."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from mlwidget import limits, predicting, training
from mlwidget import options as opt
from mlwidget.answer_limits import check_answer, declared_width
from mlwidget.errors import BadRequest, NotFound, PayloadTooLarge
from mlwidget.snapshot import Snapshot

ROWS = pd.DataFrame(
    {
        "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
        "c": list("ababababab"),
        "t": ["no"] * 5 + ["yes"] * 5,
    }
)


def detached(cls: str, target: str | None, table: pd.DataFrame = ROWS, **params: Any) -> Snapshot:
    """A snapshot of a fit of ``table`` that no store holds (as a job's worker has)."""
    options = {**opt.DEFAULTS, "class": cls, "target_col": target, "params": params}
    options["cv_folds"] = 0
    result = training.fit({**options, **params}, table)
    state = {
        "options": options,
        "fitted": result.fitted,
        "schema": result.features,
        "model": "model-1.joblib",
    }
    return Snapshot.detached("m", state, result.pipeline)


@pytest.fixture(scope="module")
def classifier() -> Snapshot:
    return detached("LogisticRegression", "t", C=100.0)


def test_predictions_come_one_a_row_in_input_order(classifier: Snapshot) -> None:
    rows = ROWS.iloc[[9, 0, 8, 1]]
    assert predicting.predict(classifier, "m", rows, None) == ["yes", "no", "yes", "no"]
    records = [{"x": 10, "c": "a"}, {"x": "1", "c": "b"}]  # text as a URL sends it
    assert predicting.predict(classifier, "m", records, None) == ["yes", "no"]
    assert predicting.predict(classifier, "m", {"x": 9.5, "c": "b"}, None) == ["yes"]


def test_the_compiled_fast_path_answers_as_the_pipeline(classifier: Snapshot) -> None:
    fast = classifier.fast()
    assert fast is not None
    few = ROWS[["x", "c"]].to_dict("records")
    assert predicting.predict(classifier, "m", few, fast) == predicting.predict(
        classifier, "m", few, None
    )


def test_a_missing_feature_column_is_a_400_naming_it(classifier: Snapshot) -> None:
    with pytest.raises(BadRequest, match="feature column\\(s\\) 'c'.*got columns 'x'"):
        predicting.predict(classifier, "m", [{"x": 1}], None)


def test_a_value_that_is_not_a_number_is_a_400(classifier: Snapshot) -> None:
    with pytest.raises(BadRequest, match="column 'x'.*'ten'"):
        predicting.predict(classifier, "m", [{"x": "ten", "c": "a"}], None)


def test_no_fitted_pipeline_is_not_found() -> None:
    snap = Snapshot.detached("m", {"model": None}, None)
    with pytest.raises(NotFound, match="no fitted estimator"):
        predicting.predict(snap, "m", [{"x": 1}], None)


def test_probabilities_are_one_mapping_a_row(classifier: Snapshot) -> None:
    proba = predicting.predict_proba(classifier, "m", ROWS.iloc[[0, 9]], None)
    assert [set(p) for p in proba] == [{"no", "yes"}, {"no", "yes"}]
    assert proba[0]["no"] > 0.5 > proba[1]["no"]
    assert all(abs(sum(p.values()) - 1) < 1e-9 for p in proba)


def test_a_regressor_gives_no_probabilities() -> None:
    snap = detached("LinearRegression", "x", ROWS[["x", "c"]])
    with pytest.raises(BadRequest, match="does not give probabilities"):
        predicting.predict_proba(snap, "m", [{"c": "a"}], None)


# ------------------------------------------------------------------------------ results


def test_results_of_rows_with_the_target_say_which_are_correct(classifier: Snapshot) -> None:
    rows = ROWS.iloc[[0, 9, 1]]
    out = predicting.predict_results(classifier, "m", rows, None, proba=True)
    table = out["table"]
    assert list(table.columns) == ["x", "c", "t", "predicted t", "P(no)", "P(yes)", "correct"]
    assert table["predicted t"].tolist() == ["no", "yes", "no"]
    assert table["correct"].tolist() == [True, True, True]
    assert out["predicted"] == "predicted t" and out["actual"] == "t"
    assert out["proba"] == ["P(no)", "P(yes)"]
    assert out["score"] == {"score": 1.0, "metric": "accuracy", "rows": 3}
    assert list(table.index) == [0, 1, 2]  # the input's index is not carried over


def test_results_without_the_target_have_no_score(classifier: Snapshot) -> None:
    out = predicting.predict_results(classifier, "m", ROWS[["x", "c"]].head(2), None)
    assert list(out["table"].columns) == ["x", "c", "predicted t"]
    assert out["actual"] is None and out["score"] is None and out["proba"] == []


def test_results_of_a_regressor_carry_the_error() -> None:
    table = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [2.0, 4.0, 6.0, 8.0]})
    snap = detached("LinearRegression", "y", table)
    out = predicting.predict_results(snap, "m", table.assign(y=[2.0, 4.0, 6.0, 9.0]), None)
    assert list(out["table"].columns) == ["x", "y", "predicted y", "error"]
    assert [round(e, 6) for e in out["table"]["error"]] == [0.0, 0.0, 0.0, -1.0]
    assert out["score"]["metric"] == "r2"


def test_results_never_overwrite_an_input_column(classifier: Snapshot) -> None:
    rows = ROWS.head(2).assign(**{"predicted t": ["mine", "mine"]})
    out = predicting.predict_results(classifier, "m", rows, None)
    assert out["predicted"] == "predicted t (2)"
    assert out["table"]["predicted t"].tolist() == ["mine", "mine"]


# ------------------------------------------------------------------------------ limits


def test_an_answer_past_max_table_cells_is_a_413_before_it_is_built(
    classifier: Snapshot,
) -> None:
    with limits.using(limits.Limits(max_table_cells=10)):
        assert len(predicting.predict(classifier, "m", ROWS, None)) == 10  # 10 x 1 cells
        with pytest.raises(PayloadTooLarge, match="at most 10 cells") as caught:
            predicting.predict_proba(classifier, "m", ROWS, None)  # 10 x 2
        assert caught.value.status == 413
        assert "Send at most 5 rows at a time" in str(caught.value)
        with pytest.raises(PayloadTooLarge, match="the results table"):
            predicting.predict_results(classifier, "m", ROWS.head(3), None)  # 3 x (3 + 2)
    assert len(predicting.predict_proba(classifier, "m", ROWS, None)) == 10  # limit restored


def test_check_answer_names_the_estimator_when_one_row_is_over_it() -> None:
    with limits.using(limits.Limits(max_table_cells=100)):
        check_answer(10, 10, "anything")  # exactly at the ceiling
        with pytest.raises(PayloadTooLarge, match="Even one row is over it: configure PCA"):
            from sklearn.decomposition import PCA

            check_answer(1, 101, "the output of PCA", PCA())


def test_a_transformers_declared_width_is_held_to_the_limit() -> None:
    snap = detached("PolynomialFeatures", None, ROWS[["x"]], degree=3)
    assert declared_width(snap.pipeline().steps[-1][1]) == 4
    (row,) = predicting.predict(snap, "m", [{"x": 2.0}], None)
    assert len(row) == 4 and row[0] == 1.0  # 1, x, x^2, x^3 (of x scaled)
    assert row[2] == pytest.approx(row[1] ** 2) and row[3] == pytest.approx(row[1] ** 3)
    with limits.using(limits.Limits(max_table_cells=7)):
        with pytest.raises(PayloadTooLarge, match="PolynomialFeatures"):
            predicting.predict(snap, "m", [{"x": 1.0}, {"x": 2.0}], None)
