"""Estimator allow-list, typed parameter parsing from URL strings, the pipeline."""

from __future__ import annotations

import pytest
from sklearn.utils import all_estimators

from mlwidget import BadRequest, boosting
from mlwidget.estimators import (
    build_pipeline,
    list_estimators,
    make_estimator,
    param_specs,
    parse_params,
    resolve_class,
)


@pytest.mark.parametrize(
    "name",
    ["os.system", "subprocess.Popen", "builtins.eval", "eval", "__import__", "os", "", None, 3],
)
def test_refuses_anything_but_estimators(name):
    with pytest.raises(BadRequest) as err:
        resolve_class(name)
    assert err.value.status == 400


def test_dotted_paths():
    from sklearn.ensemble import RandomForestClassifier

    assert resolve_class("sklearn.ensemble.RandomForestClassifier") is RandomForestClassifier
    assert resolve_class("sklearn.ensemble._forest.RandomForestClassifier") is (
        RandomForestClassifier
    )
    with pytest.raises(BadRequest):  # right name, wrong module: not scikit-learn's
        resolve_class("sklearn.linear_model.RandomForestClassifier")
    with pytest.raises(BadRequest, match="allowed_classes"):
        resolve_class("collections.OrderedDict")
    # Allowed explicitly, but not an estimator: still refused.
    with pytest.raises(BadRequest, match="not a scikit-learn style estimator"):
        resolve_class("collections.OrderedDict", allowed=["collections.OrderedDict"])
    with pytest.raises(BadRequest, match="could not be imported"):
        resolve_class("nosuchpackage.Model", allowed=["nosuchpackage.Model"])


def test_suggests_close_name():
    with pytest.raises(BadRequest, match="Did you mean 'LogisticRegression'"):
        resolve_class("logisticregression")


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_every_listed_estimator_can_be_created(kind):
    names = [name for name, _ in all_estimators(type_filter=kind)]
    assert len(names) > 30
    # scikit-learn's own, and XGBoost's when it is installed (the xgboost extra)
    names += [name for name, (_, k) in boosting.classes().items() if k == kind]
    assert set(list_estimators(kind)) == set(names)
    for name in names:
        est = make_estimator(resolve_class(name), {})
        assert type(est).__name__ == name


@pytest.mark.parametrize(
    "cls, raw, expected",
    [
        ("LogisticRegression", {"fit_intercept": "false"}, {"fit_intercept": False}),
        ("LogisticRegression", {"class_weight": "balanced"}, {"class_weight": "balanced"}),
        ("LogisticRegression", {"class_weight": "none"}, {"class_weight": None}),
        ("LogisticRegression", {"C": "0.5", "max_iter": "10"}, {"C": 0.5, "max_iter": 10}),
        ("RandomForestClassifier", {"max_depth": "none"}, {"max_depth": None}),
        ("RandomForestClassifier", {"max_depth": "4"}, {"max_depth": 4}),
        ("RandomForestClassifier", {"max_features": "1"}, {"max_features": 1}),
        ("RandomForestClassifier", {"max_features": "0.5"}, {"max_features": 0.5}),
        ("RandomForestClassifier", {"max_features": "sqrt"}, {"max_features": "sqrt"}),
        ("SGDClassifier", {"loss": "log_loss"}, {"loss": "log_loss"}),
        ("MLPClassifier", {"hidden_layer_sizes": ["10", "5"]}, {"hidden_layer_sizes": [10, 5]}),
        ("LogisticRegression", {"C": 2}, {"C": 2}),
    ],
)
def test_parse_params_types(cls, raw, expected):
    cls = resolve_class(cls)
    typed = parse_params(cls, raw)
    assert typed == expected
    for key, value in expected.items():
        assert type(typed[key]) is type(value)
    make_estimator(cls, typed)  # scikit-learn accepts them


@pytest.mark.parametrize(
    "cls, raw, message",
    [
        ("LogisticRegression", {"C": "-1"}, "The 'C' parameter of LogisticRegression must be"),
        ("LogisticRegression", {"C": "abc"}, "Got 'abc' instead"),
        ("SGDClassifier", {"loss": "nope"}, "The 'loss' parameter of SGDClassifier must be"),
        ("LogisticRegression", {"fit_intercept": "maybe"}, "'fit_intercept' parameter"),
    ],
)
def test_invalid_values_give_sklearn_message(cls, raw, message):
    cls = resolve_class(cls)
    with pytest.raises(BadRequest, match=message):
        make_estimator(cls, parse_params(cls, raw))


def test_unknown_parameter():
    with pytest.raises(BadRequest, match="LogisticRegression has no parameter 'n_estimators'"):
        parse_params(resolve_class("LogisticRegression"), {"n_estimators": "10"})


def test_meta_estimators_take_inner_estimators_by_name():
    cls = resolve_class("BaggingClassifier")
    est = make_estimator(cls, parse_params(cls, {"estimator": "DecisionTreeClassifier"}))
    assert type(est.estimator).__name__ == "DecisionTreeClassifier"
    with pytest.raises(BadRequest):
        make_estimator(cls, parse_params(cls, {"estimator": "os.system"}))


def test_param_specs_describe_inputs():
    specs = {s["name"]: s for s in param_specs(resolve_class("LogisticRegression"))}
    assert specs["C"]["type"] == "float" and specs["C"]["default"] == 1.0
    assert specs["fit_intercept"]["type"] == "bool"
    assert specs["max_iter"]["type"] == "int"
    assert "lbfgs" in specs["solver"]["choices"]


def test_pipeline_shape():
    pipe = build_pipeline(make_estimator(resolve_class("Ridge"), {}), ["a"], ["b"])
    names = [name for name, _, _ in pipe.named_steps["transform"].transformers]
    assert names == ["cat", "num"]
    encoder = pipe.named_steps["transform"].transformers[0][1].named_steps["onehot"]
    assert encoder.handle_unknown == "ignore"


def test_a_parameter_of_millions_of_values_is_refused():
    """PUT with 2,000,000 alphas was stored, and every ?_model then took 1.5 s to answer."""
    from sklearn.linear_model import RidgeCV

    from mlwidget.estimators import MAX_PARAM_VALUES

    with pytest.raises(BadRequest, match="at most 10,000 values in RidgeCV's parameter 'alphas'"):
        parse_params(RidgeCV, {"alphas": [1.0] * 2_000_000})
    assert parse_params(RidgeCV, {"alphas": [1.0] * MAX_PARAM_VALUES})["alphas"]
