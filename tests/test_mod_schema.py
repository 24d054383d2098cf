"""mlwidget/schema.py: the training frame a fit sees (rows dropped, features chosen) and the
feature schema it records; prediction inputs cast by that schema."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlwidget import schema
from mlwidget.errors import BadRequest

TABLE = pd.DataFrame(
    {
        "id": [1, 2, 3, 4, 5, 6, 7],
        "size": [1.0, 2.0, np.nan, 4.0, 1.0, 3.0, 9.0],
        "grade": [1, 2, 1, 1, 1, 1, 3],
        "color": ["red", "blue", "red", None, "red", "red", "green"],
        "y": [0, 1, 0, 1, 0, np.nan, 1],
    }
)
# row 4 repeats row 0 except for id; row 5 has no target; rows 2 and 3 miss a feature


def frame(options: dict, kind: str | None = "classifier"):
    return schema.training_frame(TABLE, {"target_col": "y", **options}, kind)


def names(features: list[dict]) -> list[str]:
    return [f["name"] for f in features]


def test_rows_with_missing_values_and_duplicates_are_dropped() -> None:
    X, y, features, warnings = frame({"exclude": ["id"]})
    assert X.to_dict("records") == [
        {"size": 1.0, "grade": 1.0, "color": "red"},
        {"size": 2.0, "grade": 2.0, "color": "blue"},
        {"size": 9.0, "grade": 3.0, "color": "green"},
    ]
    assert y.tolist() == [0, 1, 1]
    assert names(features) == ["size", "grade", "color"] and warnings == []


def test_dropna_and_deduplicate_off_keep_those_rows_but_not_a_missing_target() -> None:
    X, y, _, _ = frame({"exclude": ["id"], "dropna": False, "deduplicate": False})
    assert len(X) == 6  # row 5 has no target: never trained on
    assert X["size"].isna().sum() == 1 and X["color"].isna().sum() == 1
    assert y.tolist() == [0, 1, 0, 1, 0, 1]
    X, _, _, _ = frame({"exclude": ["id"], "dropna": False})
    assert len(X) == 5  # the repeated row is dropped


def test_include_chooses_the_features_and_warns_about_unknown_columns() -> None:
    X, _, features, warnings = frame({"include": ["color", "size", "nope", "y"]})
    assert list(X.columns) == ["color", "size"] == names(features)
    assert warnings == ["include lists 'nope', which the training data does not have; ignored."]


def test_the_target_is_never_a_feature_even_unsupervised() -> None:
    X, y, features, _ = frame({}, kind="clusterer")
    assert y is None
    assert names(features) == ["id", "size", "grade", "color"]


def test_a_missing_target_is_a_400() -> None:
    with pytest.raises(BadRequest, match="target column 'Survived'.*id, size, grade") as caught:
        schema.training_frame(TABLE, {"target_col": "Survived"}, "classifier")
    assert caught.value.status == 400
    with pytest.raises(BadRequest, match="Expected a target column for a regressor"):
        schema.training_frame(TABLE, {}, "regressor")


def test_no_feature_left_is_a_400() -> None:
    with pytest.raises(BadRequest, match="at least one feature"):
        frame({"include": ["y"]})


def test_no_row_left_is_a_400() -> None:
    empty = TABLE.assign(size=np.nan)
    with pytest.raises(BadRequest, match="No training rows are left"):
        schema.training_frame(empty, {"target_col": "y"}, "classifier")


def test_the_schema_records_kinds_categories_and_defaults() -> None:
    _, _, features, _ = frame({"exclude": ["id"], "cats": ["grade"], "dropna": False})
    by_name = {f["name"]: f for f in features}
    assert by_name["size"] == {
        "name": "size",
        "kind": "number",
        "dtype": "number",
        "categories": None,
        "default": 3.0,  # the median of 1, 2, 4, 9 (row 4, a repeat of row 0, is dropped)
    }
    assert by_name["grade"]["kind"] == "category" and by_name["grade"]["dtype"] == "number"
    assert by_name["grade"]["categories"] == [1, 2, 3] and by_name["grade"]["default"] == 1
    assert by_name["grade"]["integer"] is True
    assert by_name["color"]["kind"] == "category" and by_name["color"]["dtype"] == "string"
    assert by_name["color"]["categories"] == ["blue", "green", "red"]
    assert by_name["color"]["default"] == "red"  # the most frequent


def test_nums_makes_text_numbers_a_number_feature() -> None:
    text = pd.Series([None if pd.isna(v) else str(v) for v in TABLE["size"]], dtype=object)
    X, _, features, _ = schema.training_frame(
        TABLE.assign(size=text),
        {"target_col": "y", "nums": ["size"], "exclude": ["id"]},
        "classifier",
    )
    assert features[0]["name"] == "size" and features[0]["kind"] == "number"
    assert features[0]["default"] == 2.0  # the median of 1, 2, 9 (the kept rows)
    assert X["size"].tolist() == [1.0, 2.0, 9.0]


def test_nums_refuses_a_column_of_words() -> None:
    with pytest.raises(BadRequest, match="nums lists 'color'.*'red'"):
        frame({"nums": ["color"]})


# ------------------------------------------------------------------------------ cast


FEATURES = [
    {"name": "size", "kind": "number", "dtype": "number"},
    {"name": "grade", "kind": "category", "dtype": "string"},
]


def test_cast_types_values_as_in_training() -> None:
    raw = pd.DataFrame({"grade": [1.0, "2", ""], "size": ["3.5", 4, None]})
    out = schema.cast(raw, FEATURES)
    assert list(out.columns) == ["size", "grade"]
    assert out["size"].tolist()[:2] == [3.5, 4.0] and np.isnan(out["size"].iloc[2])
    assert out["grade"].tolist()[:2] == ["1", "2"] and pd.isna(out["grade"].iloc[2])


def test_cast_refuses_a_value_that_is_not_a_number_naming_it() -> None:
    raw = pd.DataFrame({"size": [1, "big", 3], "grade": ["a", "b", "c"]})
    with pytest.raises(BadRequest) as caught:
        schema.cast(raw, FEATURES)
    message = str(caught.value)
    assert caught.value.status == 400
    assert "column 'size'" in message and "'big'" in message and "row 2" in message


def test_cast_reads_a_blank_number_as_missing() -> None:
    out = schema.cast(pd.DataFrame({"size": ["  ", "7"], "grade": ["a", "b"]}), FEATURES)
    assert np.isnan(out["size"].iloc[0]) and out["size"].iloc[1] == 7.0
