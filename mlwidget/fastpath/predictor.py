"""The compiled model: :class:`FastPredictor` (the compiled ColumnTransformer, then a family's
arithmetic) and :func:`compile_model`, which builds it or says why it declined."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..jsonable import to_jsonable
from .base import Unsupported
from .cast import columns_from_data, columns_from_query
from .families import OwnPredict, family_of
from .transform import CompiledColumns

log = logging.getLogger("mlwidget.fastpath")


class FastPredictor:
    """Few-row predictions from the compiled arrays. Immutable once built (thread-safe).

    ``reason`` is None when the estimator is compiled too, else why its own predict answers
    (on the compiled transform's rows)."""

    def __init__(self, pipeline: Any, features: list[dict[str, Any]], kind: str) -> None:
        from sklearn.pipeline import Pipeline

        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            raise Unsupported(
                f"{type(pipeline).__name__} is not a two-step Pipeline (columns, estimator)"
            )
        ct, est = pipeline.steps[0][1], pipeline.steps[1][1]
        self.ct = CompiledColumns(ct, features)
        n_features = getattr(est, "n_features_in_", None)
        if n_features is None:
            raise Unsupported(f"{type(est).__name__} has no n_features_in_")
        if self.ct.width != n_features:
            raise Unsupported(
                f"the ColumnTransformer gives {self.ct.width} columns, {type(est).__name__} "
                f"expects {n_features}"
            )
        self.sklearn_estimator = est
        self.estimator = family_of(est, kind)
        self.family = self.estimator.family
        own = isinstance(self.estimator, OwnPredict)
        self.reason: str | None = self.estimator.reason if own else None
        if not own:
            self._self_check(est, kind)
        classes = getattr(pipeline, "classes_", None) if kind == "classifier" else None
        # Class labels key the probability dicts (a key cannot be null): spelled as the
        # pipeline's own answer spells them (estimators.to_jsonable, NaN as "nan").
        self.classes_json = (
            to_jsonable(np.asarray(classes), nan="nan") if classes is not None else None
        )

    def _self_check(self, est: Any, kind: str) -> None:
        """Compare with the estimator's own answers on a few probe rows: a scikit-learn version
        whose arithmetic differs from what this package repeats is left to the pipeline."""
        X = self.ct.probe(8)
        differ = (
            f"self-check: the compiled {self.family} family and {type(est).__name__}'s own "
            "{} differ on probe rows"
        )
        ours, theirs = np.asarray(self.estimator.predict(X)), np.asarray(est.predict(X))
        if ours.shape != theirs.shape:
            raise Unsupported(differ.format("predict"))
        if kind == "classifier":
            if not np.array_equal(ours, theirs):
                raise Unsupported(differ.format("predict"))
        elif not np.allclose(ours, theirs, rtol=1e-12, atol=1e-12):
            raise Unsupported(differ.format("predict"))
        proba = self.estimator.predict_proba(X)
        if proba is not None:
            expected = est.predict_proba(X)
            if proba.shape != expected.shape or not np.allclose(
                proba, expected, rtol=1e-12, atol=1e-12
            ):
                raise Unsupported(differ.format("predict_proba"))

    @property
    def label(self) -> str:
        return f"fast ({self.family})"

    def predict_frame(self, frame: Any, proba: bool = False) -> Any:
        """The pipeline's answer for a cast feature frame of any size (None: run the pipeline):
        the compiled transform, then the estimator's own predict / predict_proba on the same
        matrix the column transformer would have given it."""
        try:
            X = self.ct.transform_frame(frame)
            est = self.sklearn_estimator
            return est.predict_proba(X) if proba else est.predict(X)
        except Exception:
            return None

    def rows(self, data: Any = None, query: Mapping[str, Any] | None = None) -> np.ndarray:
        """The transformed matrix for the input (raises Unsupported to defer to the pipeline)."""
        ct = self.ct
        if query is not None:
            cols = columns_from_query(query, ct.names)
        else:
            cols = columns_from_data(data, ct.names)
        return ct.transform(ct.cast(cols))

    def predict(self, data: Any = None, query: Mapping[str, Any] | None = None) -> list | None:
        """JSON-able predictions, or None when the pipeline must answer."""
        try:
            X = self.rows(data, query)
            out = self.estimator.predict(X)
        except Exception:
            return None
        return to_jsonable(out)

    def predict_proba(
        self, data: Any = None, query: Mapping[str, Any] | None = None
    ) -> list[dict[Any, float]] | None:
        if self.classes_json is None:
            return None
        try:
            X = self.rows(data, query)
            proba = self.estimator.predict_proba(X)
        except Exception:
            return None
        if proba is None:
            return None
        classes = self.classes_json
        return [dict(zip(classes, map(float, row), strict=True)) for row in proba]


def compile_model(
    pipeline: Any,
    features: list[dict[str, Any]] | None,
    kind: str | None,
    reasons: list[str] | None = None,
) -> FastPredictor | None:
    """The fast predictor for a fitted mlwidget pipeline, or None if it is not covered.

    ``reasons``, a list if given, receives why the pipeline is not compiled into arrays: why
    there is no fast predictor (None), or why the FastPredictor uses the estimator's own predict
    (its ``reason``). Nothing is added when the whole pipeline is compiled. An unexpected error
    while compiling is logged (``mlwidget.fastpath``) and declines: it never raises."""
    fast, reason = None, None
    if pipeline is None:
        reason = "no fitted pipeline"
    elif not features:
        reason = "no feature schema"
    elif kind not in ("classifier", "regressor"):
        reason = f"kind {kind!r}: only classifiers and regressors have a fast path"
    else:
        try:
            fast = FastPredictor(pipeline, features, kind)
            reason = fast.reason
        except Unsupported as exc:
            reason = exc.reason or "not covered by the fast path"
        except Exception as exc:
            reason = f"compilation failed: {type(exc).__name__}: {exc}"
            log.warning("no fast path, the pipeline answers: %s", reason, exc_info=True)
    if reasons is not None and reason is not None:
        reasons.append(reason)
    return fast
