"""One ``to_jsonable``: answers give JSON null for missing values (NaN, inf, NaT, NA), numpy
values as Python values, arrays as lists, dates as ISO text; estimator parameters keep "nan" so
that they read back as the same float."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rest_helpers import call, titanic_server_config

from mlwidget import MLModel

JSON = {"Content-Type": "application/json"}
# One constant feature: PCA(whiten=True) divides by a zero variance, so its output is NaN.
FLAT = pd.DataFrame({"x": [1.0] * 6, "y": [1.0, 2, 3, 4, 5, 6]})


def strict_json(text: str):
    """JSON as the standard has it: NaN / Infinity are not JSON (Python's json accepts them)."""

    def refuse(name: str):
        raise AssertionError(f"{name} in a JSON answer: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


def nan_model(store: Path | str, name: str = "flat") -> MLModel:
    model = MLModel(
        name,
        data=FLAT,
        store=store,
        overwrite=True,
        target_col="y",
        whiten="true",
        **{"class": "PCA"},
    )
    model.retrain()
    return model


@pytest.fixture
def to_jsonable():
    from mlwidget.jsonable import to_jsonable  # inside: the answer tests run on any version

    return to_jsonable


# ---- what users see -------------------------------------------------------------------------


def test_a_nan_prediction_is_none_not_the_text_nan(tmp_path):
    model = nan_model(tmp_path / "store")
    assert model.predict([{"x": 1.0}, {"x": 2.0}]) == [[None], [None]]
    assert model.predict(pd.DataFrame({"x": [1.0, 3.0, 5.0]})) == [[None]] * 3


def test_a_sparse_transform_is_a_list_of_rows(tmp_path):
    df = pd.DataFrame({"x": [1.0, 2, 3, 4], "c": list("abab"), "y": [1.0, 2, 3, 4]})
    model = MLModel(
        "onehot", data=df, store=tmp_path / "store", target_col="y", **{"class": "OneHotEncoder"}
    )
    model.retrain()
    (row,) = model.predict([{"x": 1.0, "c": "a"}])
    assert isinstance(row, list) and row and all(v in (0.0, 1.0) for v in row)


def test_params_keep_nan_text_that_reads_back_as_nan(tmp_path):
    from sklearn.impute import SimpleImputer

    from mlwidget import estimators as est

    model = MLModel(
        "imp", data=FLAT, store=tmp_path / "store", target_col="y", **{"class": "SimpleImputer"}
    )
    model.retrain()
    stored = model.info()["params"]["missing_values"]
    assert stored == "nan"  # null would read back as missing_values=None: another imputer
    back = est.parse_params(SimpleImputer, {"missing_values": stored})["missing_values"]
    assert isinstance(back, float) and math.isnan(back)
    assert est.to_jsonable({"a": np.inf, "b": [np.nan, 1]}) == {"a": "inf", "b": ["nan", 1]}


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv)


async def test_rest_answers_give_null_for_nan(jp_fetch, store_dir):
    nan_model(store_dir)
    r = await call(jp_fetch, "mlhandler", "flat", params={"x": "1"})
    assert r.code == 200, r.text
    assert strict_json(r.text) == [[None]]
    assert '"nan"' not in r.text

    body = json.dumps([{"x": 1.0}, {"x": 4.0}])
    r = await call(
        jp_fetch, "mlhandler", "flat", method="POST", params={"_action": "predict"}, body=body,
        headers=JSON,
    )  # fmt: skip
    assert r.code == 200, r.text
    assert strict_json(r.text) == [[None], [None]]


# ---- the contract, value by value ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (np.int64(3), 3),
        (np.uint8(7), 7),
        (np.float32(1.5), 1.5),
        (np.float64(2.25), 2.25),
        (np.bool_(True), True),
        (np.str_("a"), "a"),
        (float("nan"), None),
        (np.float64("nan"), None),
        (float("inf"), None),
        (-np.inf, None),
        (pd.NaT, None),
        (pd.NA, None),
        (np.datetime64("NaT"), None),
        (pd.Timestamp("2024-01-02 03:04:05"), "2024-01-02T03:04:05"),
        (np.datetime64("2024-01-02T00:00:00.000000000"), "2024-01-02T00:00:00"),
        (dt.date(2024, 1, 2), "2024-01-02"),
        (np.timedelta64(60, "s"), "P0DT0H1M0S"),
        (np.array([1, 2, 3]), [1, 2, 3]),
        (np.array([[1.0, np.nan], [np.inf, 2.0]]), [[1.0, None], [None, 2.0]]),
        (np.array([True, False]), [True, False]),
        (np.array(["a", "b"], dtype=object), ["a", "b"]),
        (np.array(["2024-01-02", "NaT"], dtype="datetime64[ns]"), ["2024-01-02T00:00:00", None]),
        (np.array(4.5), 4.5),
        ((np.int32(1), np.nan), [1, None]),
        ({1: np.float64(0.5), "b": [np.nan]}, {"1": 0.5, "b": [None]}),
        (pd.Series([1, None], dtype="Int64"), [1, None]),
        (pd.Series([1.5, np.nan]), [1.5, None]),
        (pd.DataFrame({"a": [1.0, np.nan], "b": ["x", None]}), [[1.0, "x"], [None, None]]),
        (int, "int"),
    ],
)
def test_answer_values(to_jsonable, value, expected):
    out = to_jsonable(value)
    assert out == expected
    assert type(out) is type(expected)
    json.dumps(out, allow_nan=False)  # valid JSON, no NaN / Infinity tokens


def test_numpy_scalars_become_plain_python_types(to_jsonable):
    out = to_jsonable([np.int64(1), np.float32(0.5), np.bool_(False)])
    assert [type(v) for v in out] == [int, float, bool]
    assert [type(v) for v in to_jsonable(np.array([1.5, np.nan], dtype=np.float32))] == [
        float,
        type(None),
    ]


def test_params_spelling_is_the_same_function_with_nan_text(to_jsonable):
    assert to_jsonable(np.nan, nan="nan") == "nan"
    assert to_jsonable([np.inf, -np.inf, 1.0], nan="nan") == ["inf", "-inf", 1.0]
    assert to_jsonable(np.array([np.nan, 2.0]), nan="nan") == ["nan", 2.0]
    assert to_jsonable(pd.NaT, nan="nan") is None  # only floats have a text spelling
    with pytest.raises(ValueError, match="nan must be"):
        to_jsonable(1.0, nan="NaN")


def test_estimators_sparse_and_other_objects(to_jsonable):
    from scipy import sparse
    from sklearn.linear_model import LinearRegression

    assert to_jsonable(LinearRegression()) == "LinearRegression"
    assert to_jsonable(sparse.csr_matrix(np.eye(2))) == [[1.0, 0.0], [0.0, 1.0]]
    assert to_jsonable(1 + 2j) == "(1+2j)"


def test_old_names_are_the_one_function():
    from mlwidget import estimators as est
    from mlwidget.fastpath import jsonable
    from mlwidget.jsonable import to_jsonable

    assert jsonable is to_jsonable
    assert jsonable(np.array([np.nan])) == [None]
    assert est.to_jsonable(np.array([np.nan])) == ["nan"]


def test_server_dumps_gives_null(to_jsonable):
    from mlwidget.jsonable import dumps

    text = dumps({"p": np.array([np.nan, 1.0]), "t": pd.Timestamp("2024-01-02"), "n": np.int64(2)})
    assert strict_json(text) == {"p": [None, 1.0], "t": "2024-01-02T00:00:00", "n": 2}
