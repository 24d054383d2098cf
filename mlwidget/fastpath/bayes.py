"""Gaussian and Bernoulli naive Bayes: the estimator's own joint log-likelihood, then its
argmax and normalization, without its input validation."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import sklearn_private


class NaiveBayes:
    family = "naive bayes"

    def __init__(self, est: Any) -> None:
        import sklearn.naive_bayes as nb

        self.est = est
        self.classes = est.classes_
        self.logsumexp = sklearn_private(nb, "_logsumexp")
        self.joint_log_likelihood = sklearn_private(est, "_joint_log_likelihood")
        self.binarize = getattr(est, "binarize", None) if isinstance(est, nb.BernoulliNB) else None
        self.bernoulli = isinstance(est, nb.BernoulliNB)

    def jll(self, X: np.ndarray) -> np.ndarray:
        if self.bernoulli and self.binarize is not None:
            from sklearn.preprocessing import binarize

            X = binarize(X, threshold=self.binarize)
        return self.joint_log_likelihood(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes[np.argmax(self.jll(X), axis=1)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        jll = self.jll(X)
        log_prob_x = self.logsumexp(jll, axis=1)
        return np.exp(jll - np.atleast_2d(log_prob_x).T)
