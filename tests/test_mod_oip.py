"""mlwidget/oip.py: the Open Inference Protocol's model metadata, requests decoded into a table
and predictions encoded as outputs."""

from __future__ import annotations

import base64
import json
import struct

import numpy as np
import pytest

from mlwidget import oip
from mlwidget.errors import BadRequest, PayloadTooLarge

SCHEMA = [
    {"name": "Age", "kind": "number", "dtype": "number"},
    {"name": "Sex", "kind": "category", "dtype": "string"},
    {"name": "Pclass", "kind": "category", "dtype": "number"},
]
FEATURES = [f["name"] for f in SCHEMA]
INFO = {
    "name": "titanic",
    "kind": "classifier",
    "schema": SCHEMA,
    "target_col": "Survived",
    "version": 2,
    "fitted": {"model": "LogisticRegression"},
}


def test_metadata_lists_the_features_as_inputs_and_the_outputs() -> None:
    meta = oip.metadata(INFO, [1, 2], [0, 1])
    assert meta["name"] == "titanic" and meta["versions"] == ["1", "2"]
    assert meta["inputs"] == [
        {"name": "Age", "datatype": "FP64", "shape": [-1]},
        {"name": "Sex", "datatype": "BYTES", "shape": [-1]},
        {"name": "Pclass", "datatype": "BYTES", "shape": [-1]},  # a category
    ]
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {
            "name": "predict_proba",
            "datatype": "FP64",
            "shape": [-1, 2],
            "parameters": {"classes": [0, 1]},
        },
    ]
    assert meta["parameters"] == {
        "class": "LogisticRegression",
        "kind": "classifier",
        "target_col": "Survived",
        "version": 2,
    }


def test_metadata_outputs_by_kind_of_model() -> None:
    text = oip.metadata(INFO, [1], ["no", "yes"])
    assert text["outputs"][0]["datatype"] == "BYTES"
    regressor = oip.metadata({**INFO, "kind": "regressor"}, [1], None)
    assert regressor["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]


# ------------------------------------------------------------------------------ requests


def column_inputs(rows: int = 2) -> list[dict]:
    return [
        {"name": "Age", "datatype": "FP64", "shape": [rows], "data": [22.0, 38.0][:rows]},
        {"name": "Sex", "datatype": "BYTES", "shape": [rows], "data": ["male", "female"][:rows]},
        {"name": "Pclass", "datatype": "INT64", "shape": [rows], "data": [3, 1][:rows]},
    ]


def test_one_input_per_column_is_a_table() -> None:
    frame = oip.request_frame({"inputs": column_inputs()}, b"", FEATURES, ("Age", "Pclass"))
    assert list(frame.columns) == FEATURES
    assert frame.to_dict("records") == [
        {"Age": 22.0, "Sex": "male", "Pclass": 3.0},
        {"Age": 38.0, "Sex": "female", "Pclass": 1.0},
    ]
    assert frame["Pclass"].dtype == np.float64


def test_one_2d_input_names_its_columns() -> None:
    request = {
        "inputs": [
            {
                "name": "rows",
                "datatype": "BYTES",
                "shape": [2, 3],
                "data": [["22", "male", "3"], ["38", "female", "1"]],
                "parameters": {"columns": ["Age", "Sex", "Pclass"]},
            }
        ]
    }
    frame = oip.request_frame(request, b"", FEATURES, ("Age", "Pclass"))
    assert frame.to_dict("records") == [
        {"Age": 22.0, "Sex": "male", "Pclass": 3.0},
        {"Age": 38.0, "Sex": "female", "Pclass": 1.0},
    ]


def test_base64_bytes_are_decoded() -> None:
    inputs = column_inputs(1)
    inputs[1] = {
        "name": "Sex",
        "datatype": "BYTES",
        "shape": [1],
        "data": [base64.b64encode(b"female").decode()],
        "parameters": {"content_type": "base64"},
    }
    frame = oip.request_frame({"inputs": inputs}, b"", FEATURES)
    assert frame["Sex"].tolist() == ["female"]


def test_the_binary_data_extension_is_read() -> None:
    ages = np.array([22.0, 38.0], dtype="<f8").tobytes()
    sexes = b"".join(struct.pack("<I", len(s)) + s for s in (b"male", b"female"))
    head = {
        "inputs": [
            {
                "name": "Age",
                "datatype": "FP64",
                "shape": [2],
                "parameters": {"binary_data_size": 16},
            },
            {
                "name": "Sex",
                "datatype": "BYTES",
                "shape": [2],
                "parameters": {"binary_data_size": len(sexes)},
            },
            {"name": "Pclass", "datatype": "INT64", "shape": [2], "data": [3, 1]},
        ]
    }
    text = json.dumps(head).encode()
    request, tail = oip.parse_body(text + ages + sexes, str(len(text)))
    assert tail == ages + sexes
    frame = oip.request_frame(request, tail, FEATURES)
    assert frame["Age"].tolist() == [22.0, 38.0] and frame["Sex"].tolist() == ["male", "female"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"shape": [3]}, "its shape \\[3\\] holds 3 values, but 2 arrived"),
        ({"shape": [2, 1, 1]}, "expected a shape of one or two sizes"),
        ({"shape": [-1]}, "expected a shape of one or two sizes"),
        ({"shape": "2"}, "expected a shape of one or two sizes"),
        ({"datatype": "STRING"}, "expected a datatype of BOOL"),
        ({"data": ["male", "female"], "parameters": {"content_type": "base64"}}, "not base64"),
    ],
)
def test_a_malformed_input_is_a_400_naming_it(change: dict, message: str) -> None:
    inputs = column_inputs()
    inputs[1] = {**inputs[1], **change}
    with pytest.raises(BadRequest, match=message) as caught:
        oip.request_frame({"inputs": inputs}, b"", FEATURES)
    assert caught.value.status == 400
    assert "Input 'Sex'" in str(caught.value)


def test_data_that_is_not_a_list_is_a_400() -> None:
    inputs = column_inputs()
    inputs[1] = {**inputs[1], "data": "male"}
    with pytest.raises(BadRequest, match="data to be a list, got str"):
        oip.request_frame({"inputs": inputs}, b"", FEATURES)


def test_a_2d_input_without_its_column_names_is_a_400() -> None:
    inputs = [{"name": "rows", "datatype": "FP64", "shape": [1, 3], "data": [[1, 2, 3]]}]
    with pytest.raises(BadRequest, match='name its 3 columns in "parameters"'):
        oip.request_frame({"inputs": inputs}, b"", FEATURES)


def test_inputs_of_different_lengths_are_a_400() -> None:
    inputs = column_inputs()
    inputs[2] = {"name": "Pclass", "datatype": "INT64", "shape": [1], "data": [3]}
    with pytest.raises(BadRequest, match="same number of rows: 'Pclass' has 1, another 2"):
        oip.request_frame({"inputs": inputs}, b"", FEATURES)


def test_a_missing_feature_is_a_400_listing_the_models_inputs() -> None:
    with pytest.raises(BadRequest, match="missing 'Pclass'. The model's inputs: 'Age'"):
        oip.request_frame({"inputs": column_inputs()[:2]}, b"", FEATURES)


@pytest.mark.parametrize("request_", [{}, {"inputs": []}, {"inputs": [{"data": [1]}]}])
def test_a_request_without_named_inputs_is_a_400(request_: dict) -> None:
    with pytest.raises(BadRequest, match="inputs|input"):
        oip.request_frame(request_, b"", FEATURES)


def test_a_request_over_max_cells_is_a_413() -> None:
    with pytest.raises(PayloadTooLarge, match="ceiling of 5 values"):
        oip.request_frame({"inputs": column_inputs()}, b"", FEATURES, max_cells=5)


def test_parse_body_refuses_what_is_not_a_request() -> None:
    with pytest.raises(BadRequest, match="invalid JSON"):
        oip.parse_body(b"{nope", None)
    with pytest.raises(BadRequest, match="got list"):
        oip.parse_body(b"[1]", None)
    with pytest.raises(BadRequest, match="but the body has 3 bytes"):
        oip.parse_body(b"{}x", "9")


def test_requested_outputs() -> None:
    assert oip.requested({}) == ["predict"]
    assert oip.requested({"outputs": [{"name": "predict_proba"}]}) == ["predict_proba"]
    with pytest.raises(BadRequest, match="got 'explain'"):
        oip.requested({"outputs": [{"name": "explain"}]})


# ------------------------------------------------------------------------------ responses


@pytest.mark.parametrize(
    "predictions, datatype",
    [([0, 1, 1], "INT64"), ([True, False], "INT64"), ([1.5, 2], "FP64"), (["no", "yes"], "BYTES")],
)
def test_response_datatypes_follow_the_predictions(predictions: list, datatype: str) -> None:
    answer = oip.response("titanic", 3, {"id": "r1"}, predictions, None)
    assert answer == {
        "model_name": "titanic",
        "model_version": "3",
        "outputs": [
            {
                "name": "predict",
                "datatype": datatype,
                "shape": [len(predictions)],
                "data": predictions,
            }
        ],
        "id": "r1",
    }


def test_response_probabilities_are_row_major_with_their_classes() -> None:
    proba = [{"no": 0.75, "yes": 0.25}, {"no": 0.125, "yes": 0.875}]
    answer = oip.response("titanic", None, {}, None, proba)
    assert answer["model_version"] is None and "id" not in answer
    assert answer["outputs"] == [
        {
            "name": "predict_proba",
            "datatype": "FP64",
            "shape": [2, 2],
            "data": [0.75, 0.25, 0.125, 0.875],
            "parameters": {"classes": ["no", "yes"]},
        }
    ]
