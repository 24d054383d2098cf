"""Linear models: scikit-learn's matrix product, decision and link (``expit`` / ``softmax`` for
``LogisticRegression.predict_proba``) on the fitted ``coef_`` and ``intercept_``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Unsupported


class Linear:
    family = "linear"

    def __init__(self, est: Any, classifier: bool) -> None:
        from sklearn.linear_model import LogisticRegression

        coef = est.coef_
        if not isinstance(coef, np.ndarray) or coef.dtype != np.float64:
            raise Unsupported(f"{type(est).__name__}.coef_ is not a dense float64 array")
        self.coef_t = coef.T if coef.ndim == 2 else coef
        self.intercept = est.intercept_
        self.classifier = classifier
        self.classes = getattr(est, "classes_", None)
        own = getattr(type(est), "predict_proba", None)
        self.softmax_proba = classifier and own is LogisticRegression.predict_proba

    def scores(self, X: np.ndarray) -> np.ndarray:
        scores = X @ self.coef_t + self.intercept
        if self.classifier and scores.ndim > 1 and scores.shape[1] == 1:
            return scores.reshape(-1)
        return scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = self.scores(X)
        if not self.classifier:
            return scores
        classes = self.classes
        assert classes is not None  # a fitted classifier has classes_
        if scores.ndim == 1:
            return classes.take((scores > 0).astype(np.intp), axis=0)
        return classes.take(np.argmax(scores, axis=1), axis=0)

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        if not self.softmax_proba or self.classes is None:  # (softmax_proba: a classifier)
            return None
        from scipy.special import expit
        from sklearn.utils.extmath import softmax

        if self.classes.shape[0] <= 2:
            prob = self.scores(X)
            prob = expit(prob, out=prob)
            if prob.ndim == 1:
                return np.stack([1 - prob, prob], axis=1)
            return None
        return softmax(self.scores(X), copy=False)
