"""Explanations (issue 30): ``MLModel.explain`` and ``?_action=explain``.

Each row's answer gives the input columns' contributions (one-hot columns summed back to their
column), the base value and the value explained. The exact methods (shap's TreeExplainer and
LinearExplainer) must add up to the model's own output, checked here against the model itself;
other models get the bounded permutation method, which says it is approximate."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER, NOTEBOOKS
from rest_helpers import assert_clean_error, call, titanic_server_config

from mlwidget import MLModel, explain_permutation, limits
from mlwidget.errors import BadRequest, MLWidgetError, PayloadTooLarge
from mlwidget.keys import KeyRing

pytest.importorskip("shap")

TITANIC = pd.read_csv(NOTEBOOKS / "titanic.csv")
FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
ROWS = TITANIC.iloc[[0, 1, 3, 5, 10]][FEATURES].reset_index(drop=True)  # a missing Age among them
FOREST = {**GUIDE_OPTIONS, "class": "RandomForestClassifier", "n_estimators": 20}
FARE = {**GUIDE_OPTIONS, "target_col": "Fare"}  # Survived is a feature here


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("explain") / "store"


def model(store: Path, name: str, **options) -> MLModel:
    return MLModel(name, data=TITANIC, store=store, executor="thread", **options)


def adds_up(row: dict) -> bool:
    total = row["base_value"] + sum(row["contributions"].values())
    return bool(np.isclose(total, row["value"], rtol=1e-6, atol=1e-6))


def own_rows(m: MLModel, rows: pd.DataFrame = ROWS) -> pd.DataFrame:
    return rows[[f["name"] for f in m.features]]


# ------------------------------------------------------------------------------ from Python


def test_a_linear_model_adds_up_to_its_log_odds(store):
    m = model(store, "linear", **GUIDE_OPTIONS)
    answers = m.explain(ROWS)
    margin = m.pipeline.decision_function(own_rows(m))  # class 1's log-odds
    predicted = m.predict(ROWS)
    assert len(answers) == len(ROWS)
    for row, d, p in zip(answers, margin, predicted, strict=True):
        assert row["method"] == "linear" and row["exact"] is True and "note" not in row
        assert row["prediction"] == p
        assert row["output"] == f"log-odds of class {p}"
        assert row["value"] == pytest.approx(d if p == 1 else -d)
        assert adds_up(row), row
        # the original columns, one each: the one-hot columns of Sex are summed into "Sex"
        assert set(row["contributions"]) == {f["name"] for f in m.features}
        assert not any("_" in name for name in row["contributions"])
    # a woman in first class: Sex and Pclass push towards survival
    (woman,) = m.explain({**GUIDE_PASSENGER, "Sex": "female", "Pclass": 1}, class_=1)
    assert woman["output"] == "log-odds of class 1"
    assert woman["contributions"]["Sex"] > 0 and woman["contributions"]["Pclass"] > 0


def test_a_forest_adds_up_to_its_probability(store):
    m = model(store, "forest", **FOREST)
    answers = m.explain(ROWS)
    proba = m.pipeline.predict_proba(own_rows(m))
    for i, row in enumerate(answers):
        assert row["method"] == "tree" and row["exact"] is True
        c = row["prediction"]
        assert row["output"] == f"probability of class {c}"
        assert row["value"] == pytest.approx(proba[i, c])
        assert adds_up(row), row
        assert set(row["contributions"]) == set(FEATURES)
    # another class than the predicted one
    for i, row in enumerate(m.explain(ROWS, class_="1")):
        assert row["output"] == "probability of class 1"
        assert row["value"] == pytest.approx(proba[i, 1]) and adds_up(row)


@pytest.mark.parametrize(
    ("estimator", "method"), [("RandomForestRegressor", "tree"), ("Ridge", "linear")]
)
def test_a_regressor_adds_up_to_its_prediction(store, estimator, method):
    m = model(store, f"fare-{method}", **{**FARE, "class": estimator})
    rows = ROWS.drop(columns="Fare").assign(Survived=[0, 1, 1, 0, 1])
    answers = m.explain(rows)
    predicted = m.pipeline.predict(own_rows(m, rows))
    for row, p in zip(answers, predicted, strict=True):
        assert (row["method"], row["output"], row["exact"]) == (method, "prediction", True)
        assert row["value"] == pytest.approx(p) and row["prediction"] == pytest.approx(p)
        assert adds_up(row), row
        assert "Survived" in row["contributions"] and "Fare" not in row["contributions"]


def test_a_multiclass_linear_model_explains_each_class(store):
    m = model(store, "classes", **{**GUIDE_OPTIONS, "target_col": "Pclass", "cats": ["Sex"]})
    rows = ROWS.drop(columns="Pclass").assign(Survived=[0, 1, 1, 0, 1])
    margins = m.pipeline.decision_function(own_rows(m, rows))
    classes = list(m.pipeline.classes_)
    for c in classes:
        for i, row in enumerate(m.explain(rows, class_=c)):
            assert row["output"] == f"margin of class {c}" and row["method"] == "linear"
            assert row["value"] == pytest.approx(margins[i, classes.index(c)]) and adds_up(row)


def test_other_models_get_the_bounded_permutation_method(store, monkeypatch):
    import shap

    seen = []
    call_ = shap.PermutationExplainer.__call__

    def spy(self, *args, **kwargs):
        seen.append((kwargs["max_evals"], self.masker.data.shape))
        return call_(self, *args, **kwargs)

    monkeypatch.setattr(shap.PermutationExplainer, "__call__", spy)
    m = model(store, "neighbours", **{**GUIDE_OPTIONS, "class": "KNeighborsClassifier"})
    answers = m.explain(ROWS.iloc[:2])
    proba = m.pipeline.predict_proba(own_rows(m, ROWS.iloc[:2]))
    for i, row in enumerate(answers):
        assert row["method"] == "permutation" and row["exact"] is False
        assert "approximate" in row["note"] and "background rows" in row["note"]
        assert row["output"] == f"probability of class {row['prediction']}"
        # the estimates still add up to the model's own output
        assert row["value"] == pytest.approx(proba[i, row["prediction"]]) and adds_up(row)
        assert set(row["contributions"]) == set(FEATURES)
    ((evals, background),) = seen
    assert evals <= explain_permutation.EVALS
    assert background == (explain_permutation.BACKGROUND_ROWS, len(FEATURES))


def test_an_exact_method_that_does_not_reproduce_the_model_is_not_used(store):
    """PoissonRegressor has coefficients, but predicts exp(X w): the linear method would
    explain its log, so the permutation method answers, in the prediction's own units."""
    m = model(store, "poisson", **{**FARE, "class": "PoissonRegressor"})
    rows = ROWS.iloc[:1].drop(columns="Fare").assign(Survived=[0])
    (row,) = m.explain(rows)
    assert row["method"] == "permutation" and row["output"] == "prediction"
    assert row["value"] == pytest.approx(m.predict(rows)[0]) and adds_up(row)


def test_bad_requests_say_what_to_do(store):
    m = model(store, "linear", **GUIDE_OPTIONS)
    with pytest.raises(BadRequest, match="Expected the feature column"):
        m.explain([{"Sex": "male"}])
    with pytest.raises(BadRequest, match="one of the model's classes 0, 1; got '7'"):
        m.explain(ROWS, class_=7)
    with pytest.raises(PayloadTooLarge, match="at most 2 rows to explain") as error:
        with limits.using(limits.Limits(max_explain_rows=2)):
            m.explain(ROWS)
    assert error.value.status == 413
    assert m.explain(ROWS.iloc[:0]) == []
    fare = model(store, "fare-linear", **{**FARE, "class": "Ridge"})
    with pytest.raises(BadRequest, match="no class for a regressor"):
        fare.explain(ROWS.drop(columns="Fare").assign(Survived=0), class_=1)
    clusters = model(store, "clusters", **{**GUIDE_OPTIONS, "class": "KMeans", "target_col": None})
    with pytest.raises(BadRequest, match="classifiers and regressors"):
        clusters.explain(ROWS)


def test_without_shap_the_error_says_how_to_install_it(store, monkeypatch):
    m = model(store, "linear", **GUIDE_OPTIONS)
    monkeypatch.setitem(sys.modules, "shap", None)  # import shap raises ImportError
    with pytest.raises(MLWidgetError, match=r'pip install "mlwidget\[explain\]"') as error:
        m.explain(ROWS)
    assert error.value.status == 501


# ------------------------------------------------------------------------------ REST


@pytest.fixture
def jp_server_config(store_dir: Path, titanic_csv: Path) -> dict:
    config = titanic_server_config(store_dir, titanic_csv)
    config["MLWidgetApp"]["max_explain_rows"] = 3
    return config


PASSENGER = {k: str(v) for k, v in GUIDE_PASSENGER.items()}
CSV = "Sex,Age,SibSp,Parch,Fare,Pclass,Embarked\nmale,22,1,0,7.25,3,S\nfemale,38,1,0,71.3,1,C\n"


async def test_rest_get_and_post_explain(jp_fetch, store_dir):
    m = MLModel.open("titanic", store=store_dir)
    reply = await call(jp_fetch, "mlhandler", "titanic", params={**PASSENGER, "_action": "explain"})
    assert reply.code == 200, reply.text
    (row,) = reply.json()
    assert row == m.explain(GUIDE_PASSENGER)[0]
    assert row["method"] == "linear" and adds_up(row) and set(row["contributions"]) == set(FEATURES)
    # POST CSV and JSON bodies; class= (or _class=) picks the class explained
    headers = {"Content-Type": "text/csv"}
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST", params={"_action": "explain"},
        body=CSV, headers=headers,
    )  # fmt: skip
    assert reply.code == 200, reply.text
    assert [r["prediction"] for r in reply.json()] == m.predict(
        pd.read_csv(pd.io.common.StringIO(CSV))
    )
    body = '[{"Sex": "female", "Age": 38, "SibSp": 1, "Parch": 0, "Fare": 71.3, "Pclass": 1, "Embarked": "C"}]'
    for key in ("class", "_class"):
        reply = await call(
            jp_fetch, "mlhandler", "titanic", method="POST",
            params={"_action": "explain", key: "0"}, body=body,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        (row,) = reply.json()
        assert row["output"] == "log-odds of class 0" and row["prediction"] == 1 and adds_up(row)


async def test_rest_a_viewer_key_may_explain(jp_fetch, store_dir):
    _, key = KeyRing(store_dir).create("viewer", "titanic")
    auth = {"Authorization": f"Bearer {key}"}
    reply = await call(
        jp_fetch, "mlhandler", "titanic", params={**PASSENGER, "_action": "explain"}, headers=auth
    )
    assert reply.code == 200, reply.text
    reply = await call(
        jp_fetch, "mlhandler", "titanic", method="POST", params={"_action": "explain"},
        body=CSV, headers={**auth, "Content-Type": "text/csv"},
    )  # fmt: skip
    assert reply.code == 200 and len(reply.json()) == 2, reply.text
    # a viewer of other models may not
    _, other = KeyRing(store_dir).create("viewer", "hr-*")
    reply = await call(
        jp_fetch, "mlhandler", "titanic", params={**PASSENGER, "_action": "explain"},
        headers={"Authorization": f"Bearer {other}"},
    )  # fmt: skip
    assert_clean_error(reply, 403, "needs the viewer role")


async def test_rest_bad_explain_requests_are_clear(jp_fetch):
    async def explain(params=None, body=None, ctype="text/csv"):
        return await call(
            jp_fetch, "mlhandler", "titanic", method="POST" if body is not None else "GET",
            params={"_action": "explain", **(params or {})}, body=body,
            headers={"Content-Type": ctype} if body is not None else None,
        )  # fmt: skip

    assert_clean_error(await explain(), 400, "Expected feature values in the query")
    assert_clean_error(await explain(body=""), 400, "_action=explain needs rows")
    assert_clean_error(await explain(body="Sex\nmale\n"), 400, "Expected the feature column", "Age")
    bad_age = CSV.replace("male,22", "male,old")
    assert_clean_error(await explain(body=bad_age), 400, "old")
    assert_clean_error(await explain({"class": "7"}, body=CSV), 400, "classes 0, 1")
    many = CSV + CSV.split("\n", 1)[1]  # 4 rows; this server explains at most 3
    assert_clean_error(await explain(body=many), 413, "at most 3 rows", "max_explain_rows")
