"""How big an answer may be, checked before it is built: predictions, class probabilities, a
transformer's output or a results table of ``rows`` x ``columns`` cells are held to
``max_table_cells`` of ``limits.current()`` (the server setting, or a job's), a 413 saying what
to do; a MemoryError while building one is the same 413, never a 500.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import limits
from .errors import PayloadTooLarge

# Attributes a fitted transformer declares its output width by: PolynomialFeatures,
# SplineTransformer, PCA/NMF/..., and scikit-learn's ClassNamePrefixFeaturesOutMixin (PCA,
# KernelPCA, RBFSampler, Nystroem, RandomTreesEmbedding, ...).
WIDTH_ATTRIBUTES = ("n_output_features_", "n_features_out_", "n_components_", "_n_features_out")


def declared_width(estimator: Any) -> int | None:
    """How many columns ``estimator.transform`` gives a row, when the fitted estimator says so
    without building anything (PolynomialFeatures(degree=50) says 12,736,262,814,039,336);
    None when it cannot tell. ``get_feature_names_out`` is not asked: it builds one string a
    column, which costs more than transforming one row (see ``predicting.transform``)."""
    from sklearn.base import OneToOneFeatureMixin

    for attribute in WIDTH_ATTRIBUTES:
        try:
            value = getattr(estimator, attribute, None)
        except Exception:  # a property of a half-fitted estimator
            continue
        if isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 0:
            return int(value)
    if isinstance(estimator, OneToOneFeatureMixin):  # scalers and the like: one out per one in
        value = getattr(estimator, "n_features_in_", None)
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            return int(value)
    return None


def check_answer(rows: int, columns: int, what: str, estimator: Any = None) -> None:
    """A 413 before building an answer of ``rows`` x ``columns`` cells over the ceiling
    (``max_table_cells`` of ``limits.current()``: the server setting, or a job's), saying what
    to do: fewer rows, or, when one row is over it already, an estimator that gives fewer
    columns (a classifier of 10,000 classes makes 10,000 probabilities a row)."""
    limit = limits.current().max_table_cells
    if rows * columns <= limit:
        return
    if columns > limit:
        named = f"{type(estimator).__name__} " if estimator is not None else ""
        advice = (
            f"Even one row is over it: configure {named}to give fewer columns (a lower degree, "
            "fewer components), retrain, and predict again."
        )
    else:
        advice = (
            f"Send at most {limit // columns:,} rows at a time, or ask the server's "
            "administrator to raise MLWidgetApp.max_table_cells."
        )
    raise PayloadTooLarge(
        f"Expected an answer of at most {limit:,} cells (rows x columns; the server setting "
        f"max_table_cells), got {what} for {rows:,} rows: {rows:,} rows x {columns:,} columns "
        f"({rows * columns:,} cells). {advice}"
    )


@contextlib.contextmanager
def out_of_memory_is_413(rows: int, what: str) -> Iterator[None]:
    """A MemoryError while building an answer becomes a 413 naming max_table_cells (the
    ceiling that should have caught it), never a 500."""
    try:
        yield
    except MemoryError:
        limit = limits.current().max_table_cells
        raise PayloadTooLarge(
            f"Expected an answer this server can build, but {what} for {rows:,} rows ran out of "
            f"memory (the ceiling is {limit:,} cells, rows x columns: the server "
            "setting max_table_cells). Send fewer rows at a time, or configure an estimator "
            "that gives fewer columns and retrain."
        ) from None
