"""mlwidget.names: the name a new model is offered for a file, and why a name cannot be taken.
The dashboard's New model form and the listing page (through ``?_action=preview``) show these."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlwidget import Conflict, MLModel
from mlwidget.names import name_error, suggested_name
from mlwidget.store import MAX_NAME, Store, check_name


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("titanic.csv", "titanic"),
        ("/data/2024/sales.q1.xlsx", "sales.q1"),
        ("my data (final).csv", "my-data-final"),
        ("données.csv", "donn-es"),
        ("my..data.csv", "my.data"),  # ".." cannot be in a name
        ("-x-.csv", "x"),
        (".hidden.csv", "hidden"),
        ("v2.csv", "model-v2"),  # mlhandler/v2 is the Open Inference Protocol's path
        ("", "model"),
        ("%%%.csv", "model"),
    ],
)
def test_a_file_name_becomes_a_name_the_store_takes(filename: str, name: str) -> None:
    assert suggested_name(filename) == name
    assert check_name(name) == name


def test_a_long_file_name_is_cut_to_the_stores_limit_even_with_a_number() -> None:
    long = "b" * 300 + ".csv"
    assert suggested_name(long) == "b" * MAX_NAME
    taken = ["b" * MAX_NAME]
    name = suggested_name(long, taken=taken)
    assert name == "b" * (MAX_NAME - 2) + "-2" and len(name) == MAX_NAME
    assert check_name(name) == name
    # a cut that would end in "-" or "." does not
    assert suggested_name("a" * (MAX_NAME - 1) + "-b.csv") == "a" * (MAX_NAME - 1)


def test_taken_and_lookalike_names_get_a_number(store_dir: Path) -> None:
    store = Store(store_dir)
    MLModel("titanic", store=store_dir, model={"class": "LogisticRegression"})
    assert suggested_name("titanic.csv", store) == "titanic-2"
    assert suggested_name("Titanic.csv", store) == "Titanic-2"  # only case differs
    assert suggested_name("titanic..csv", store) == "titanic-2"  # only a trailing dot
    assert suggested_name("iris.csv", store, taken=["iris", "IRIS-2"]) == "iris-3"


def test_name_error_says_the_cores_refusal(store_dir: Path) -> None:
    store = Store(store_dir)
    MLModel("titanic", store=store_dir, model={"class": "LogisticRegression"})
    assert name_error("iris", store) is None
    assert "exists already, so nothing was created" in name_error("titanic", store)
    assert "differs from it only by case" in name_error("Titanic", store)
    assert "letters, digits" in name_error("my model!", store)
    assert "Open Inference Protocol" in name_error("v2", store)
    assert "(200 characters)" in name_error("x" * 200, store)
    with pytest.raises(Conflict) as err:
        MLModel("Titanic", store=store_dir, data=pd.DataFrame({"x": [1]}), create=True)
    assert str(err.value) == name_error("Titanic", store)  # the same words: one rule
