"""mlwidget/state.py: a new model's options (initial), a configure's options (staged_options),
appended rows, the record of a fit and the class chosen when none was given."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlwidget import options as opt
from mlwidget import state, training
from mlwidget.errors import BadRequest

ROWS = pd.DataFrame(
    {
        "x": [1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        "c": list("abababab"),
        "t": ["yes", "no", "yes", "no", "no", "yes", "no", "yes"],
    }
)


# ------------------------------------------------------------------------------ initial


def test_initial_fills_in_the_defaults() -> None:
    options, table, imported, warnings, notes = state.initial({}, None)
    assert {k: v for k, v in options.items() if k != "params"} == {
        k: v for k, v in opt.DEFAULTS.items() if k != "params"
    }
    assert options["params"] == {}
    assert (table, imported, warnings, notes) == (None, None, [], [])


def test_initial_resolves_the_class_and_types_its_params() -> None:
    got = state.initial(
        {
            "class_": "sklearn.linear_model.LogisticRegression",
            "C": "0.5",
            "max_iter": "50",
            "fit_intercept": "false",
            "target_col": "t",
        },
        None,
    )
    assert got.options["class"] == "LogisticRegression"
    assert got.options["params"] == {"C": 0.5, "max_iter": 50, "fit_intercept": False}
    assert got.options["target_col"] == "t"


def test_initial_reads_the_data_relative_to_base_dir_and_names_only_the_file(
    titanic_csv: Path,
) -> None:
    got = state.initial(
        {"data": "titanic.csv", "class": "LogisticRegression", "target_col": "Survived"},
        titanic_csv.parent,
    )
    assert got.table.shape == (891, 12)
    assert got.options["data"] == "titanic.csv"  # never the server's path
    assert got.notes == []


def test_initial_refuses_a_bad_parameter_value() -> None:
    with pytest.raises(BadRequest, match="'C' parameter of LogisticRegression") as caught:
        state.initial({"class": "LogisticRegression", "C": -1}, None)
    assert caught.value.status == 400


def test_initial_refuses_an_unknown_parameter_naming_it() -> None:
    with pytest.raises(BadRequest, match="no parameter 'nope'"):
        state.initial({"class": "LogisticRegression", "nope": 1}, None)


def test_initial_refuses_params_without_a_class() -> None:
    with pytest.raises(BadRequest, match="'C' but no model class") as caught:
        state.initial({"C": 1, "target_col": "t"}, None)
    assert caught.value.status == 400


def test_initial_chooses_a_class_for_a_target_and_says_so() -> None:
    got = state.initial({"data": ROWS, "target_col": "t"}, None)
    assert got.options["class"] == "RandomForestClassifier"
    assert got.notes and "RandomForestClassifier" in got.notes[0]
    assert got.options["data"] == "DataFrame"
    assert got.table.equals(ROWS)


# ------------------------------------------------------------------------------ default_class


def test_default_class_by_the_kind_of_target() -> None:
    text = {"target_col": "t"}
    assert "classification" in state.default_class(text, ROWS)[0]
    assert text["class"] == "RandomForestClassifier" and text["params"] == {}
    numbers = {"target_col": "x"}
    assert "regression" in state.default_class(numbers, ROWS)[0]
    assert numbers["class"] == "RandomForestRegressor"


def test_default_class_leaves_a_given_class_alone() -> None:
    given = {"target_col": "t", "class": "KMeans"}
    assert state.default_class(given, ROWS) == []
    assert given == {"target_col": "t", "class": "KMeans"}
    # no target: nothing is set, and the note says what would be picked
    untargeted: dict = {"target_col": None}
    (note,) = state.default_class(untargeted, ROWS)
    assert note.startswith("No target_col was given, so the model was not trained.")
    assert "target_col='t'" in note and "class" not in untargeted


def test_default_class_refuses_a_target_not_in_the_data() -> None:
    with pytest.raises(BadRequest, match="target column 'Survived'"):
        state.default_class({"target_col": "Survived"}, ROWS)


# ------------------------------------------------------------------------------ staged_options


STORED = {"class": "LogisticRegression", "params": {"C": 0.5}, "target_col": "t"}


def test_a_new_class_resets_the_params() -> None:
    got = state.staged_options(STORED, {"class": "RandomForestClassifier"}, {})
    assert got["class"] == "RandomForestClassifier" and got["params"] == {}
    assert got["target_col"] == "t"


def test_the_same_class_keeps_the_params_and_new_ones_are_merged_typed() -> None:
    got = state.staged_options(STORED, {"class": "LogisticRegression"}, {"max_iter": "20"})
    assert got["params"] == {"C": 0.5, "max_iter": 20}
    assert STORED["params"] == {"C": 0.5}  # the stored options are not changed


def test_staged_options_refuses_params_without_a_class() -> None:
    with pytest.raises(BadRequest, match="Set class first"):
        state.staged_options({"class": None, "params": {}}, {}, {"C": 1})


def test_staged_options_names_an_unknown_parameter() -> None:
    with pytest.raises(BadRequest, match="'n_estimators' is neither an mlwidget option"):
        state.staged_options(STORED, {}, {"n_estimators": 10})


def test_staged_options_sets_plain_options() -> None:
    got = state.staged_options(STORED, {"exclude": ["c"]}, {})
    assert got["exclude"] == ["c"] and got["params"] == {"C": 0.5}


# ------------------------------------------------------------------------------ appended


def test_appended_adds_rows_cast_to_the_stored_types() -> None:
    more = pd.DataFrame({"t": ["no"], "c": ["b"], "x": ["9.5"]})  # another order, text
    out = state.appended(ROWS, more)
    assert len(out) == len(ROWS) + 1
    assert list(out.columns) == ["x", "c", "t"]
    assert out["x"].iloc[-1] == 9.5 and pd.api.types.is_float_dtype(out["x"])
    assert list(out.index) == list(range(len(out)))


def test_appended_to_no_data_is_the_table() -> None:
    more = ROWS.iloc[2:4]
    out = state.appended(None, more)
    assert out.equals(more.reset_index(drop=True))


def test_appended_columns_must_match_naming_the_difference() -> None:
    wrong = pd.DataFrame({"x": [1.0], "t": ["no"], "extra": [1]})
    with pytest.raises(BadRequest) as caught:
        state.appended(ROWS, wrong)
    assert caught.value.status == 400
    assert "missing 'c'" in str(caught.value) and "unexpected 'extra'" in str(caught.value)
    assert "Nothing was appended" in str(caught.value)


def test_appended_refuses_text_in_a_number_column() -> None:
    with pytest.raises(BadRequest, match="column 'x'.*'many'"):
        state.appended(ROWS, pd.DataFrame({"x": ["many"], "c": ["a"], "t": ["no"]}))


# ------------------------------------------------------------------------------ record_fit


def fit_options() -> dict:
    return {**opt.DEFAULTS, "class": "LogisticRegression", "target_col": "t", "cv_folds": 0}


def test_record_fit_records_a_version_and_answers_with_its_score() -> None:
    result = training.fit(fit_options(), ROWS)
    st = {"data": "data-1.pkl", "created_warnings": ["from creation"]}
    answer = state.record_fit(st, ROWS, result, "model-1.joblib", None)
    assert set(answer) == {
        "score",
        "metric",
        "on",
        "cv_score",
        "rows",
        "model",
        "target_col",
        "version",
        "warnings",
    }
    assert answer["model"] == "LogisticRegression" and answer["target_col"] == "t"
    assert answer["metric"] == "accuracy" and 0 <= answer["score"] <= 1
    assert answer["on"] == "training" and answer["rows"] == len(ROWS)
    assert answer["version"] == 1 and answer["warnings"][0] == "from creation"
    assert st["model"] == "model-1.joblib" and st["serving"] == 1
    assert st["fitted"]["data"] == "data-1.pkl" and st["fitted"]["data_rows"] == len(ROWS)
    assert [f["name"] for f in st["schema"]] == ["x", "c"]
    assert [v["version"] for v in st["versions"]] == [1]

    again = state.record_fit(st, ROWS, result, "model-2.joblib", None)
    assert again["version"] == 2
    assert [v["model"] for v in st["versions"]] == ["model-1.joblib", "model-2.joblib"]


def test_record_fit_answers_with_the_metric_asked_for() -> None:
    result = training.fit(fit_options(), ROWS, metric="f1_macro")
    answer = state.record_fit({}, ROWS, result, "model-1.joblib", "f1_macro")
    assert answer["metric"] == "f1_macro" and answer["score"] == result.asked
    assert answer["on"] == "training"
