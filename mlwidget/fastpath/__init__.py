"""A fast path for few-row predictions: the fitted pipeline compiled into plain arrays.

scikit-learn's ``Pipeline.predict`` on a one-row DataFrame spends milliseconds on validation and
pandas work for what is a few hundred floating-point operations. :func:`compile_model` reads what
a prediction needs from the fitted mlwidget pipeline (see ``estimators.build_pipeline``) once:
the feature order and dtypes, each category's one-hot position, the imputation values, the
scaling arrays, and the estimator's own fitted arrays. :class:`FastPredictor` then answers a few
rows (a dict, records, a small DataFrame or a GET query) with numpy on those arrays. Larger
frames use :meth:`FastPredictor.predict_frame`: the same transform, vectorized, then the
estimator's own predict (no ColumnTransformer).

The answers are exactly the pipeline's: inputs are cast as ``schema.cast`` casts them, the
transformed matrix is bit-for-bit what the ColumnTransformer produces, and each estimator family
repeats scikit-learn's own arithmetic in the same order (trees compare float32 inputs with their
float64 thresholds and sum the trees in order, boosting adds ``learning_rate * value`` stage by
stage, linear models use the same matrix product and link). Whatever is not covered (another
pipeline shape, an estimator without a compiled family, an input that is unusual in any way:
a value that needs pandas to cast, a missing column, a non-finite number) returns ``None``, and
the caller runs the full pipeline, which gives the answer or the error it always gave.

When a pipeline is not compiled, :func:`compile_model` says why (``reasons=``). The parts, each
importing only those listed before it: ``base`` (the row limit, the exception that declines),
``cast`` (input values as ``schema.cast`` casts them), ``transform`` (the ColumnTransformer as
arrays), ``linear``, ``trees``, ``bayes`` (the compiled estimator families), ``families`` (which
family answers for an estimator) and ``predictor`` (:class:`FastPredictor`, :func:`compile_model`).
"""

from ..jsonable import to_jsonable as jsonable  # the old name: predictions, NaN as None
from .base import MAX_ROWS
from .predictor import FastPredictor, compile_model

__all__ = ["MAX_ROWS", "FastPredictor", "compile_model", "jsonable"]
