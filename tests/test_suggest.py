"""suggest.py: the target, the kind of problem and the class a model made without code gets."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import NOTEBOOKS

from mlwidget import BadRequest, suggest


def test_iris_is_classification_of_species():
    frame = pd.read_csv(NOTEBOOKS / "iris.csv")
    out = suggest.inspect(frame)
    assert out["target"] == "species" and out["kind"] == "classifier"
    assert out["class"] == "RandomForestClassifier"
    assert out["reason"] == "species holds 3 distinct text values, so this is classification"
    assert out["rows"] == len(frame) and len(out["preview"]) == 10
    assert out["preview"][0] == frame.iloc[0].to_dict()
    species = next(c for c in out["columns"] if c["name"] == "species")
    assert species == {"name": "species", "dtype": "text", "distinct": 3, "missing": 0}
    assert [c["dtype"] for c in out["columns"]] == ["number"] * 4 + ["text"]
    json.dumps(out, allow_nan=False)  # JSON as it is


def test_weight_is_regression():
    frame = pd.read_csv(NOTEBOOKS / "weight.csv")
    out = suggest.inspect(frame, target="weight")
    assert out["kind"] == "regressor" and out["class"] == "RandomForestRegressor"
    assert out["reason"] == (
        f"weight holds {frame['weight'].nunique()} distinct numbers, so this is regression"
    )
    # the last column is the target when none is named like one
    assert suggest.suggest_target(frame) == "weight"


def test_titanic_survived_zero_one_is_classes():
    frame = pd.read_csv(NOTEBOOKS / "titanic.csv")
    out = suggest.inspect(frame)
    assert out["target"] == "Survived" and out["kind"] == "classifier"
    assert out["reason"] == "Survived holds 2 distinct whole numbers, so this is classification"
    age = next(c for c in out["columns"] if c["name"] == "Age")
    assert age["missing"] == 177 and age["dtype"] == "number"
    json.dumps(out, allow_nan=False)  # missing values are null in the preview
    assert out["preview"][5]["Age"] is None
    # Fare is an amount: regression
    assert suggest.infer_kind(frame["Fare"])[0] == "regressor"


def test_dates_bools_and_target_names():
    frame = pd.DataFrame(
        {
            "Outcome": [True, False, True],
            "when": ["2024-01-05", "2024-02-01", None],
            "stamp": pd.to_datetime(["2024-01-05", "2024-02-01", "2024-03-01"]),
            "x": [1.5, 2.5, 3.5],
        }
    )
    out = suggest.inspect(frame)
    assert [c["dtype"] for c in out["columns"]] == ["bool", "date", "date", "number"]
    assert out["columns"][1]["missing"] == 1
    assert out["target"] == "Outcome" and out["kind"] == "classifier"  # any case
    assert out["reason"] == "Outcome holds yes/no values, so this is classification"
    assert out["preview"][0]["stamp"].startswith("2024-01-05")
    assert suggest.default_class("clusterer") == "KMeans"
    assert suggest.default_class("transformer") == "PCA"


def test_an_unknown_target_names_the_columns():
    frame = pd.read_csv(NOTEBOOKS / "iris.csv")
    with pytest.raises(BadRequest) as caught:
        suggest.inspect(frame, target="Species ")
    assert caught.value.status == 400
    assert "sepal_length, sepal_width, petal_length, petal_width, species" in str(caught.value)
    assert "'Species '" in str(caught.value)
