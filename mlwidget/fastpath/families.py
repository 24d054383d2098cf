"""Which family answers for a fitted estimator: a compiled one (linear, trees, boosting, naive
Bayes) when scikit-learn's own predict is the one the family repeats, else the estimator's own
predict on the transformed rows, which still skips the DataFrame and the ColumnTransformer."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import boosting
from .base import TooLarge, Unsupported, sklearn_private
from .bayes import NaiveBayes
from .linear import Linear
from .trees import Boosting, TreeClassifier, TreeRegressor


class OwnPredict:
    """The estimator's own predict on the transformed rows: skips the DataFrame and the column
    transformer, which is most of the cost (k-neighbours and any other classifier/regressor).
    ``reason`` says why it has no compiled form."""

    def __init__(self, est: Any, family: str, reason: str) -> None:
        self.est = est
        self.family = family
        self.reason = reason

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.est.predict(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        return self.est.predict_proba(X) if hasattr(self.est, "predict_proba") else None


def family_of(est: Any, kind: str) -> Any:
    """The family that answers for ``est`` (raises Unsupported with the reason if none)."""
    try:
        return _compiled_family(est, kind)
    except TooLarge as exc:
        name = type(est).__name__
        return OwnPredict(est, f"{name}.predict", f"{name}: {exc.reason}")


def _own(est: Any, family: str) -> OwnPredict:
    reason = f"estimator family {type(est).__name__} has no compiled form: its own predict is used"
    return OwnPredict(est, family, reason)


def _compiled_family(est: Any, kind: str) -> Any:
    from sklearn import ensemble, linear_model, naive_bayes, neighbors, tree
    from sklearn.linear_model import ElasticNet

    cls = type(est)
    if boosting.is_xgboost_model(est):  # its predict is XGBoost's own: the pipeline answers
        raise Unsupported(f"{cls.__name__} (XGBoost) has no fast path: the pipeline predicts")
    if kind == "classifier":
        # Linear models: scikit-learn's decision function, not overridden (subclasses that
        # override predict only for its docstring pass; the self-check catches any other).
        mixin = sklearn_private(linear_model, "_base.LinearClassifierMixin")
        if isinstance(est, mixin) and cls.decision_function is mixin.decision_function:
            return Linear(est, classifier=True)
        base = sklearn_private(tree, "_classes.BaseDecisionTree")
        if (
            isinstance(est, tree.DecisionTreeClassifier)
            and cls.predict is base.predict
            and cls.predict_proba is tree.DecisionTreeClassifier.predict_proba
        ):
            return TreeClassifier(est, [est], forest=False)
        forest = sklearn_private(ensemble, "_forest.ForestClassifier")
        if (
            isinstance(est, forest)
            and cls.predict is forest.predict
            and cls.predict_proba is forest.predict_proba
            and est.n_outputs_ == 1
            and all(type(t).predict_proba is tree.DecisionTreeClassifier.predict_proba for t in est)
        ):
            return TreeClassifier(est, list(est.estimators_), forest=True)
        if cls is ensemble.GradientBoostingClassifier:
            return Boosting(est, classifier=True)
        if cls in (naive_bayes.GaussianNB, naive_bayes.BernoulliNB):
            return NaiveBayes(est)
        if cls is neighbors.KNeighborsClassifier:
            return _own(est, "k-neighbours")
        return _own(est, f"{cls.__name__}.predict")
    if kind == "regressor":
        linear = sklearn_private(linear_model, "_base.LinearModel")
        if isinstance(est, linear) and sklearn_private(cls, "_decision_function") in (
            sklearn_private(linear, "_decision_function"),
            sklearn_private(ElasticNet, "_decision_function"),  # for dense input: LinearModel's
        ):
            return Linear(est, classifier=False)
        base = sklearn_private(tree, "_classes.BaseDecisionTree")
        if isinstance(est, tree.DecisionTreeRegressor) and cls.predict is base.predict:
            return TreeRegressor(est, [est], forest=False)
        forest = sklearn_private(ensemble, "_forest.ForestRegressor")
        if (
            isinstance(est, forest)
            and cls.predict is forest.predict
            and est.n_outputs_ == 1
            and all(type(t).predict is base.predict for t in est)
        ):
            return TreeRegressor(est, list(est.estimators_), forest=True)
        if cls is ensemble.GradientBoostingRegressor:
            return Boosting(est, classifier=False)
        if cls is neighbors.KNeighborsRegressor:
            return _own(est, "k-neighbours")
        return _own(est, f"{cls.__name__}.predict")
    raise Unsupported(f"kind {kind!r}: only classifiers and regressors have a fast path")
