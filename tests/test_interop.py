"""Interoperability on real clients: ``tritonclient.http`` against the Open Inference Protocol
(V2) endpoints of a real Jupyter server, and ``mlflow.pyfunc`` loading an exported model."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import GUIDE_OPTIONS, NOTEBOOKS
from rest_helpers import TITANIC, jupyter_server

from mlwidget import MLModel

tritonclient = pytest.importorskip("tritonclient.http")
mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")

FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """A ``python -m jupyter_server`` with the guide's Titanic model (two versions) and an iris
    model (string labels)."""
    tmp = tmp_path_factory.mktemp("interop")
    store = tmp / "store"
    titanic = MLModel("titanic", data=str(TITANIC), store=store, executor="thread", **GUIDE_OPTIONS)
    titanic.configure({"class": "RandomForestClassifier", "n_estimators": 20, "random_state": 0})
    titanic.retrain()  # version 2 serves; version 1 is the logistic regression
    iris = pd.read_csv(NOTEBOOKS.parent / "tests" / "data" / "iris.csv")
    MLModel("iris", data=iris, store=store, target_col="species", class_="LogisticRegression")
    with jupyter_server(tmp, store) as (url, token):
        yield url, token, store


def client(url: str) -> tritonclient.InferenceServerClient:
    return tritonclient.InferenceServerClient(url.split("://", 1)[1] + "/mlhandler")


def inputs_of(frame: pd.DataFrame, binary: bool) -> list:
    out = []
    for name in frame.columns:
        column = frame[name]
        if not pd.api.types.is_numeric_dtype(column):
            data = column.fillna("").astype(str).to_numpy(dtype=object)
            item = tritonclient.InferInput(name, [len(frame)], "BYTES")
        else:
            data = column.to_numpy(dtype=np.float64)
            item = tritonclient.InferInput(name, [len(frame)], "FP64")
        item.set_data_from_numpy(data, binary_data=binary)
        out.append(item)
    return out


def test_tritonclient_infers_the_same_as_rest(served):
    import requests

    url, token, store = served
    headers = {"Authorization": f"token {token}"}
    triton = client(url)
    assert triton.is_server_live(headers=headers)
    assert triton.is_server_ready(headers=headers)
    assert triton.is_model_ready("titanic", headers=headers)
    meta = triton.get_model_metadata("titanic", headers=headers)
    assert [i["name"] for i in meta["inputs"]] == FEATURES
    types = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert types["Sex"] == "BYTES" and types["Age"] == "FP64"
    assert {o["name"] for o in meta["outputs"]} == {"predict", "predict_proba"}
    assert meta["versions"] == ["1", "2"]

    rows = pd.read_csv(TITANIC)[FEATURES]
    result = triton.infer(
        "titanic",
        inputs_of(rows, False),
        outputs=[
            tritonclient.InferRequestedOutput("predict", binary_data=False),
            tritonclient.InferRequestedOutput("predict_proba", binary_data=False),
        ],
        headers=headers,
    )
    rest = requests.post(
        f"{url}/mlhandler/titanic",
        data=rows.to_json(orient="records"),
        headers={**headers, "Content-Type": "application/json"},
        timeout=60,
    ).json()
    assert result.as_numpy("predict").tolist() == rest and len(rest) == 891
    proba = result.as_numpy("predict_proba")
    assert proba.shape == (891, 2) and np.allclose(proba.sum(axis=1), 1)
    assert result.get_response()["model_version"] == "2"

    # an older version answers at its own path
    old = triton.infer("titanic", inputs_of(rows, False), model_version="1", headers=headers)
    store_model = MLModel.open("titanic", store=store)
    store_model.rollback(1)
    try:
        assert old.as_numpy("predict").tolist() == store_model.predict(rows)
    finally:
        store_model.rollback(2)


def test_the_binary_data_extension_as_tritonclient_encodes_it(served):
    """tritonclient sends binary tensors by default (its own request encoder here: its client
    passes the header length as an int, which newer ``requests`` refuse)."""
    import requests

    url, token, _ = served
    rows = pd.read_csv(TITANIC)[FEATURES]
    body, json_size = tritonclient.InferenceServerClient.generate_request_body(
        inputs_of(rows, True),
        outputs=[tritonclient.InferRequestedOutput("predict", binary_data=False)],
    )
    reply = requests.post(
        f"{url}/mlhandler/v2/models/titanic/infer",
        data=body,
        headers={
            "Authorization": f"token {token}",
            "Inference-Header-Content-Length": str(json_size),
            "Content-Type": "application/octet-stream",
        },
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    (output,) = reply.json()["outputs"]
    assert output["data"] == MLModel.open("titanic", store=served[2]).predict(rows)


def test_v2_errors_and_auth(served):
    import requests

    url, token, _ = served
    base = f"{url}/mlhandler/v2/models/titanic/infer"
    headers = {"Authorization": f"token {token}"}
    bad = {"inputs": [{"name": "Sex", "shape": [2], "datatype": "BYTES", "data": ["male"]}]}
    reply = requests.post(base, json=bad, headers=headers, timeout=30)
    assert reply.status_code == 400 and "shape [2] holds 2 values" in reply.json()["error"]
    reply = requests.post(base, json={"inputs": bad["inputs"][:0]}, headers=headers, timeout=30)
    assert reply.status_code == 400 and "inputs" in reply.json()["error"]
    one = {"inputs": [{"name": "Sex", "shape": [1], "datatype": "BYTES", "data": ["male"]}]}
    reply = requests.post(base, json=one, headers=headers, timeout=30)
    assert reply.status_code == 400 and "missing 'Pclass'" in reply.json()["error"]
    assert requests.post(base, json=one, timeout=30).status_code == 403  # no token
    assert (
        requests.get(f"{url}/mlhandler/v2/models/nope", headers=headers, timeout=30).status_code
        == 404
    )
    reply = requests.get(
        f"{url}/mlhandler/v2/models/titanic/versions/9/ready", headers=headers, timeout=30
    )
    assert reply.status_code == 404 and "keeps 1, 2" in reply.json()["error"]


def test_iris_labels_come_back_as_bytes(served):
    import requests

    url, token, _ = served
    headers = {"Authorization": f"token {token}"}
    rows = pd.read_csv(NOTEBOOKS.parent / "tests" / "data" / "iris.csv").drop(columns="species")
    triton = client(url)
    meta = triton.get_model_metadata("iris", headers=headers)
    assert {o["name"]: o["datatype"] for o in meta["outputs"]}["predict"] == "BYTES"
    result = triton.infer("iris", inputs_of(rows, False), headers=headers)
    got = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict").tolist()]
    rest = requests.post(
        f"{url}/mlhandler/iris", data=rows.to_json(orient="records"),
        headers={**headers, "Content-Type": "application/json"}, timeout=30,
    ).json()  # fmt: skip
    assert got == rest and set(rest) == {"setosa", "versicolor", "virginica"}
    assert result.get_response()["outputs"][0]["datatype"] == "BYTES"


def test_mlserver_documented_pandas_request_works_unchanged(served, tmp_path):
    """The request body MLServer's documentation shows for a pandas-coded model (its content
    types page, "Usage"), on a model with those columns. (The page's JSON has a trailing comma
    after the last input, which no JSON parser takes, MLServer's included: it is left out.)"""
    import requests

    url, token, store = served
    people = pd.DataFrame(
        {"First Name": ["Joanne", "Michael", "Ann", "Bob"] * 5, "Age": [34, 27, 61, 45] * 5}
    )
    people["senior"] = (people["Age"] > 50).astype(int)
    MLModel(
        "people",
        data=people,
        store=store,
        target_col="senior",
        class_="DecisionTreeClassifier",
        deduplicate=False,
    )
    documented = {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {"name": "First Name", "datatype": "BYTES", "parameters": {"content_type": "str"}, "shape": [2], "data": ["Joanne", "Michael"]},
            {"name": "Age", "datatype": "INT32", "shape": [2], "data": [34, 22]},
        ],
    }  # fmt: skip
    reply = requests.post(
        f"{url}/mlhandler/v2/models/people/infer",
        json=documented,
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    (output,) = reply.json()["outputs"]
    assert output["name"] == "predict" and output["data"] == [0, 0] and output["shape"] == [2]


def test_mlflow_loads_the_export_and_predicts_the_same(served, tmp_path, monkeypatch):
    import requests

    monkeypatch.setenv("MLFLOW_ALLOW_MODEL_CODE_EXECUTION", "true")  # a pickled model
    url, token, store = served
    model = MLModel.open("titanic", store=store)
    folder = model.export("mlflow", tmp_path / "exported")
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    assert set(mlmodel["flavors"]) == {"python_function", "sklearn"}
    columns = json.loads(mlmodel["signature"]["inputs"])
    assert [c["name"] for c in columns] == FEATURES
    assert "scikit-learn==" in (folder / "requirements.txt").read_text()
    rows = pd.read_csv(TITANIC)
    loaded = mlflow_pyfunc.load_model(str(folder))
    assert loaded.predict(rows[FEATURES]).tolist() == model.predict(rows)

    # the same over REST: a zip of that directory
    reply = requests.get(
        f"{url}/mlhandler/titanic",
        params={"_download": "", "_format": "mlflow", "version": "1"},
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("application/zip")
    zipfile.ZipFile(io.BytesIO(reply.content)).extractall(tmp_path / "zip")
    v1 = mlflow_pyfunc.load_model(str(tmp_path / "zip" / "titanic-mlflow"))
    assert type(v1.get_raw_model()[-1]).__name__ == "LogisticRegression"
    with pytest.raises(Exception, match="empty folder"):
        model.export("mlflow", folder)
