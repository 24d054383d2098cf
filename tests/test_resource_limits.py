"""What one request can make the server spend is bounded: threads, memory, and parameters that
crashed a fit answer a clear 4xx and store nothing (issue 10)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rest_helpers import TITANIC, assert_clean_error, call, stored, titanic_server_config

from mlwidget import MLModel, limits

NAME = "titanic"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    return titanic_server_config(store_dir, titanic_csv)


async def put(jp_fetch, body: dict, name: str = NAME):
    return await call(
        jp_fetch, "mlhandler", name, method="PUT", params={"_model": ""},
        body=json.dumps(body), headers=JSON,
    )  # fmt: skip


async def retrain(jp_fetch, name: str = NAME, **params: str):
    return await call(
        jp_fetch, "mlhandler", name, method="POST", params={"_action": "retrain", **params}
    )


async def test_n_jobs_is_capped_at_the_machines_cpus(jp_fetch, store_dir):
    """n_jobs=100000 left ~21,800 threads in the server and answered 500."""
    reply = await put(jp_fetch, {"class": "RandomForestClassifier", "n_estimators": 8,
                                 "n_jobs": 100000})  # fmt: skip
    assert reply.code == 200, reply.text
    before = threading.active_count()
    reply = await retrain(jp_fetch)
    assert reply.code == 200, reply.text
    assert any("n_jobs=100000 was capped" in w for w in reply.json()["warnings"]), reply.json()
    assert threading.active_count() < before + 20
    info = (await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})).json()
    assert info["fitted"]["params"]["n_jobs"] <= 64
    assert any("capped" in w for w in info["warnings"])


# (PUT body, then retrain?) -> status and words of the error; nothing is stored either way
CRASHERS = [
    ({"class": "GridSearchCV", "cv": 3}, False, 400, ["GridSearchCV", "param_grid"]),
    ({"class": "Pipeline", "verbose": True}, False, 400, ["Pipeline", "steps"]),
    ({"class": "ColumnTransformer", "n_jobs": 1}, False, 400, ["transformers"]),
    ({"class": "FeatureUnion", "n_jobs": 1}, False, 400, ["transformer_list"]),
    ({"class": "SparseCoder", "transform_alpha": 1}, False, 400, ["dictionary"]),
    ({"class": "SGDClassifier", "max_iter": 10**12}, True, 400, ["SGDClassifier", "too large"]),
    ({"class": "MLPClassifier", "hidden_layer_sizes": 10**9}, True, 413, ["memory"]),
    ({"class": "ClassifierChain"}, True, 400, ["ClassifierChain", "IndexError"]),
]


@pytest.mark.parametrize("index", range(len(CRASHERS)), ids=[c[0]["class"] for c in CRASHERS])
async def test_parameters_that_crashed_a_fit_are_clear_errors(jp_fetch, store_dir, index):
    body, train, status, words = CRASHERS[index]
    await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})
    if not train:
        before = stored(store_dir)
        assert_clean_error(await put(jp_fetch, body), status, *words)
        assert stored(store_dir) == before
        return
    reply = await put(jp_fetch, body)
    assert reply.code == 200, reply.text
    before = stored(store_dir)
    assert_clean_error(await retrain(jp_fetch), status, *words)
    assert stored(store_dir) == before


async def test_retrain_with_a_bad_metric_changes_nothing(jp_fetch, store_dir):
    """It replaced the stored data and the model before answering 400."""
    await call(jp_fetch, "mlhandler", NAME, params={"_model": ""})
    before = stored(store_dir)
    body = pd.read_csv(TITANIC).head(300).to_csv(index=False)
    reply = await call(
        jp_fetch, "mlhandler", NAME, method="POST",
        params={"_action": "retrain", "_metric": "no_such_metric"},
        body=body, headers={"Content-Type": "text/csv"},
    )  # fmt: skip
    assert_clean_error(reply, 400, "no_such_metric", "scorer")
    assert stored(store_dir) == before
    # and a good one reports that score, on the training rows
    reply = await call(
        jp_fetch, "mlhandler", NAME, method="POST",
        params={"_action": "retrain", "_metric": "f1_weighted"},
        body=body, headers={"Content-Type": "text/csv"},
    )  # fmt: skip
    assert reply.code == 200, reply.text
    assert reply.json()["metric"] == "f1_weighted"
    assert 0.5 < reply.json()["score"] <= 1


def many_categories(rows: int = 20_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "code": [f"c{i}" for i in range(rows)],  # every value distinct
            "x": rng.normal(size=rows).round(2),
            "y": rng.integers(0, 2, size=rows),
        }
    )


async def test_a_column_of_many_distinct_values_is_grouped(jp_fetch, store_dir):
    """A 0.24 MB CSV with 20,000 distinct categories needed > 3.4 GB to train (dense one-hot)."""
    body = many_categories().to_csv(index=False)
    assert len(body) < 400_000
    await put(jp_fetch, {"class": "LogisticRegression", "cats": ["code"]}, name="wide")
    reply = await call(
        jp_fetch, "mlhandler", "wide", method="POST",
        params={"_action": "retrain", "target_col": "y"},
        body=body, headers={"Content-Type": "text/csv"},
    )  # fmt: skip
    assert reply.code == 200, reply.text
    assert any("20000 distinct values" in w for w in reply.json()["warnings"])
    pipeline = MLModel.open("wide", store=store_dir).pipeline
    assert (
        pipeline[:-1].transform(many_categories(5)).shape[1] <= limits.current().max_categories + 1
    )
    # the model still predicts every row, known and unknown codes alike
    rows = json.dumps([{"code": "c1", "x": 0}, {"code": "never seen", "x": 1}])
    reply = await call(jp_fetch, "mlhandler", "wide", method="POST", body=rows, headers=JSON)
    assert reply.code == 200 and len(reply.json()) == 2, reply.text


def test_a_training_matrix_over_the_ceiling_is_413(tmp_path, ceilings):
    ceilings(max_matrix_cells=10_000)
    m = MLModel("m", store=tmp_path)
    m.configure(class_="LogisticRegression", target_col="y")
    with pytest.raises(Exception) as caught:
        m.retrain(many_categories(20_000))
    assert getattr(caught.value, "status", None) == 413
    assert "max_matrix_cells" in str(caught.value)
    assert m.info()["fitted"] is None
