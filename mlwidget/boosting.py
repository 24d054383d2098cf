"""XGBoost's scikit-learn estimators in mlwidget (optional: the ``xgboost`` extra).

- :func:`classes`: ``XGBClassifier`` and ``XGBRegressor`` by name, when xgboost imports; the
  estimator catalog (estimators.py) lists them beside scikit-learn's own.
- :func:`constraints`: their parameters in scikit-learn's vocabulary. XGBoost declares none (its
  constructors take ``**kwargs``), so without these every parameter was "other": URL strings
  were read by their look alone and nothing was checked before the fit. With them, values are
  typed, offered (``param_specs``) and checked (``make_estimator``) as scikit-learn's are.
- :class:`LabelEncoded`: ``XGBClassifier`` learns the labels 0..k-1 only. A classifier of any
  other labels (text, True/False, 1..k) is wrapped (:func:`for_labels`) so that it learns their
  codes and answers, and lists in ``classes_``, the original labels; it pickles with the model.

Nothing here imports xgboost unless it is asked for XGBoost's classes.
"""

from __future__ import annotations

import logging
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone, is_classifier
from sklearn.utils._param_validation import Interval, StrOptions

log = logging.getLogger("mlwidget")

KINDS = {"XGBClassifier": "classifier", "XGBRegressor": "regressor"}


def classes() -> dict[str, tuple[type, str]]:
    """``{name: (class, kind)}`` of XGBoost's scikit-learn estimators; empty without xgboost."""
    try:
        import xgboost
    except ImportError:
        return {}
    except Exception as exc:  # installed but broken (its native library would not load)
        log.warning("mlwidget: xgboost is installed but does not import (%s); not offered", exc)
        return {}
    return {name: (getattr(xgboost, name), kind) for name, kind in KINDS.items()}


def is_xgboost(cls: type) -> bool:
    """Whether ``cls`` is one of XGBoost's catalogued estimators."""
    return cls.__module__.split(".")[0] == "xgboost" and cls.__name__ in KINDS


def is_xgboost_model(estimator: Any) -> bool:
    """Whether a (fitted) estimator is XGBoost's, wrapped by :class:`LabelEncoded` or not."""
    if isinstance(estimator, LabelEncoded):
        estimator = estimator.estimator
    return is_xgboost(type(estimator))


def _positive_int() -> list[Any]:
    return [Interval(Integral, 1, None, closed="left"), None]


def _at_least_zero(kind: type) -> list[Any]:
    return [Interval(kind, 0, None, closed="left"), None]


def _fraction() -> list[Any]:
    return [Interval(Real, 0, 1, closed="right"), None]


# XGBModel's parameters (xgboost 3), in scikit-learn's vocabulary: None is XGBoost's default.
CONSTRAINTS: dict[str, list[Any]] = {
    "n_estimators": _positive_int(),
    "max_depth": _at_least_zero(Integral),
    "max_leaves": _at_least_zero(Integral),
    "max_bin": [Interval(Integral, 2, None, closed="left"), None],
    "grow_policy": [StrOptions({"depthwise", "lossguide"}), None],
    "learning_rate": _at_least_zero(Real),
    "verbosity": [Interval(Integral, 0, 3, closed="both"), None],
    "objective": [str, callable, None],
    "booster": [StrOptions({"gbtree", "gblinear", "dart"}), None],
    "tree_method": [StrOptions({"auto", "exact", "approx", "hist"}), None],
    "n_jobs": [Integral, None],
    "gamma": _at_least_zero(Real),
    "min_child_weight": _at_least_zero(Real),
    "max_delta_step": _at_least_zero(Real),
    "subsample": _fraction(),
    "sampling_method": [StrOptions({"uniform", "gradient_based"}), None],
    "colsample_bytree": _fraction(),
    "colsample_bylevel": _fraction(),
    "colsample_bynode": _fraction(),
    "reg_alpha": _at_least_zero(Real),
    "reg_lambda": _at_least_zero(Real),
    "scale_pos_weight": _at_least_zero(Real),
    "base_score": [Real, "array-like", None],
    "random_state": ["random_state"],
    "missing": [Real],
    "num_parallel_tree": _positive_int(),
    "monotone_constraints": [str, dict, "array-like", None],
    "interaction_constraints": [str, "array-like", None],
    "importance_type": [
        StrOptions({"gain", "weight", "cover", "total_gain", "total_cover"}),
        None,
    ],
    "device": [str, None],
    "validate_parameters": ["boolean", None],
    "enable_categorical": ["boolean"],
    "feature_types": ["array-like", None],
    "feature_weights": ["array-like", None],
    "max_cat_to_onehot": _positive_int(),
    "max_cat_threshold": _positive_int(),
    "multi_strategy": [StrOptions({"one_output_per_tree", "multi_output_tree"}), None],
    "eval_metric": [str, "array-like", callable, None],
    # mlwidget's fit gives XGBoost no evaluation set, which early stopping needs
    "early_stopping_rounds": [None],
    "callbacks": ["array-like", None],
}


def constraints(cls: type) -> dict[str, list[Any]] | None:
    """The parameter declarations of an XGBoost estimator class; None for any other class."""
    return CONSTRAINTS if is_xgboost(cls) else None


def label_codes(labels: Any) -> bool:
    """Whether sorted distinct ``labels`` are the integers 0..k-1 (what XGBoost learns)."""
    values = np.asarray(labels)
    return values.dtype.kind in "iu" and np.array_equal(values, np.arange(len(values)))


def for_labels(estimator: Any, y: Any) -> Any:
    """``estimator``, or wrapped in :class:`LabelEncoded` when it is an XGBoost classifier and
    the labels ``y`` are not its codes 0..k-1."""
    if y is None or not is_xgboost(type(estimator)) or not is_classifier(estimator):
        return estimator
    if label_codes(np.unique(np.asarray(y))):
        return estimator
    return LabelEncoded(estimator)


class LabelEncoded(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """A classifier that learns the codes 0..k-1 of the labels (``np.unique``'s order, as
    scikit-learn's LabelEncoder) and answers with the labels themselves: ``classes_`` are the
    original labels, ``predict`` gives them, ``predict_proba`` has a column per label in that
    order. ``estimator_`` is the fitted inner classifier."""

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, **fit_params: Any) -> LabelEncoded:
        labels, codes = np.unique(np.asarray(y), return_inverse=True)
        self.estimator_ = clone(self.estimator).fit(X, codes, **fit_params)
        self.classes_ = labels
        return self

    @classmethod
    def fitted(cls, estimator: Any, labels: Any) -> LabelEncoded:
        """The wrapper of ``estimator``, already fitted on the codes of ``labels`` (sorted)."""
        out = cls(clone(estimator))
        out.estimator_ = estimator
        out.classes_ = np.asarray(labels)
        return out

    def predict(self, X: Any) -> np.ndarray:
        codes = np.asarray(self.estimator_.predict(X)).astype(np.intp)
        return self.classes_[codes]

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.estimator_.predict_proba(X)

    @property
    def n_features_in_(self) -> int:
        return int(self.estimator_.n_features_in_)

    @property
    def feature_importances_(self) -> np.ndarray:
        return self.estimator_.feature_importances_
