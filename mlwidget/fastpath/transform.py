"""The fitted ColumnTransformer as arrays: mlwidget's imputer + one-hot encoder for categories,
imputer + standard scaler for numbers (see ``estimators.build_pipeline``), giving bit for bit the
matrix the ColumnTransformer gives, for a few cast rows or for a whole cast feature frame."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import Unsupported
from .cast import as_number, as_text


class CompiledColumns:
    """What the transform needs, read once from the fitted ColumnTransformer: the feature order
    and dtypes, each category's one-hot position, the imputation values and the scaling arrays.
    Immutable once built (thread-safe)."""

    def __init__(self, ct: Any, features: list[dict[str, Any]]) -> None:
        import pandas as pd
        from sklearn.compose import ColumnTransformer
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        if type(ct) is not ColumnTransformer:
            raise Unsupported(f"first step {type(ct).__name__} is not a ColumnTransformer")
        if ct.sparse_threshold != 0:
            raise Unsupported("ColumnTransformer with sparse output (sparse_threshold != 0)")
        dtypes = {f["name"]: f["dtype"] for f in features}
        kinds = {f["name"]: f["kind"] for f in features}
        self.names = [f["name"] for f in features]
        self.dtypes = [dtypes[n] for n in self.names]
        self.cats: list[tuple[str, Any, dict[Any, int], int]] = []
        self.nums: list[str] = []
        width = 0
        num_slice = None
        for name, trans, cols in ct.transformers_:
            if name == "remainder":
                if trans != "drop":
                    raise Unsupported("ColumnTransformer remainder is not dropped")
                continue
            if not isinstance(cols, list) or not all(c in dtypes for c in cols):
                raise Unsupported(f"transformer {name!r} reads columns that are not features")
            second, fills = _imputed(name, trans, cols)
            block = ct.output_indices_[name]
            if name == "cat" and type(second) is OneHotEncoder:
                if any(kinds[c] != "category" for c in cols):
                    raise Unsupported("OneHotEncoder over features that are not categories")
                self.cats = _one_hot(second, cols, fills, block)
            elif name == "num" and type(second) is StandardScaler:
                sc = second
                if any(kinds[c] != "number" or dtypes[c] != "number" for c in cols):
                    raise Unsupported("StandardScaler over features that are not numbers")
                if block.stop - block.start != len(cols):
                    raise Unsupported("StandardScaler output columns differ from its inputs")
                self.nums = list(cols)
                self.num_fill = np.asarray(fills, dtype=np.float64)
                self.num_mean = sc.mean_ if sc.with_mean else None
                self.num_scale = sc.scale_ if sc.with_std else None
                num_slice = block
            else:
                raise Unsupported(
                    f"transformer {name!r} ({type(second).__name__}) has no compiled form"
                )
            width = max(width, block.stop)
        self.width = width
        self.num_slice = num_slice
        self.cat_index = {c[0]: pd.Index(list(c[2]), dtype=object) for c in self.cats}

    def cast(self, cols: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """Each value cast as ``schema.cast`` casts it (raises Unsupported to defer)."""
        out = {}
        for name, dtype in zip(self.names, self.dtypes, strict=True):
            convert = as_number if dtype == "number" else as_text
            out[name] = [convert(v) for v in cols[name]]
        return out

    def transform(self, cols: dict[str, list[Any]]) -> np.ndarray:
        """The ColumnTransformer's matrix for a few cast rows ``{feature: [values]}``."""
        n = len(cols[self.names[0]])
        X = np.zeros((n, self.width))
        for name, fill, mapping, offset in self.cats:
            for row, value in enumerate(cols[name]):
                if type(value) is float and not math.isfinite(value):
                    # the pipeline either rejects it or encodes it as unknown, depending on the
                    # other categorical columns' types: let it decide
                    raise Unsupported
                j = mapping.get(fill if value is None else value)
                if j is not None:
                    X[row, offset + j] = 1.0
        if self.nums:
            V = np.array([cols[name] for name in self.nums], dtype=np.float64).T
            missing = np.isnan(V)
            if missing.any():
                V[missing] = np.broadcast_to(self.num_fill, V.shape)[missing]
            if not np.isfinite(V).all():
                raise Unsupported  # the pipeline rejects infinities with its own message
            if self.num_mean is not None:
                V -= self.num_mean
            if self.num_scale is not None:
                V /= self.num_scale
            X[:, self.num_slice] = V
        if not np.isfinite(X).all():
            raise Unsupported
        return X

    def transform_frame(self, frame: Any) -> np.ndarray:
        """The ColumnTransformer's matrix for a cast feature frame of any size, vectorized."""
        n = len(frame)
        X = np.zeros((n, self.width))
        for name, fill, _mapping, offset in self.cats:
            col = frame[name]
            if col.dtype.kind == "f" and np.isinf(col.to_numpy()).any():
                raise Unsupported  # as in transform
            if col.hasnans:
                col = col.fillna(fill)
            codes = self.cat_index[name].get_indexer(col.astype(object))
            known = np.flatnonzero(codes >= 0)
            X[known, offset + codes[known]] = 1.0
        if self.nums:
            V = frame[self.nums].to_numpy(dtype=np.float64, copy=True)
            missing = np.isnan(V)
            if missing.any():
                V[missing] = np.broadcast_to(self.num_fill, V.shape)[missing]
            if not np.isfinite(V).all():
                raise Unsupported
            if self.num_mean is not None:
                V -= self.num_mean
            if self.num_scale is not None:
                V /= self.num_scale
            X[:, self.num_slice] = V
        return X

    def probe(self, n: int) -> np.ndarray:
        """``n`` transformed rows to check an estimator on: random one-hot categories (some
        unknown) and standard-normal numbers, the same rows on every call."""
        rng = np.random.default_rng(0)
        X = np.zeros((n, self.width))
        for _, _, mapping, offset in self.cats:
            for row in range(n):
                j = int(rng.integers(0, len(mapping) + 1))
                if j < len(mapping):
                    X[row, offset + j] = 1.0
        if self.nums:
            X[:, self.num_slice] = rng.normal(size=(n, len(self.nums)))
        return X


def _imputed(name: str, trans: Any, cols: list[str]) -> tuple[Any, list[Any]]:
    """A transformer's second step and its imputer's fill values: it must be a two-step
    Pipeline that starts with a SimpleImputer of NaN, one fill value per column."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    if type(trans) is not Pipeline or len(trans.steps) != 2:
        raise Unsupported(f"transformer {name!r} is not a two-step Pipeline")
    imp, second = trans.steps[0][1], trans.steps[1][1]
    if type(imp) is not SimpleImputer:
        raise Unsupported(f"transformer {name!r} starts with {type(imp).__name__}")
    if imp.add_indicator:
        raise Unsupported("SimpleImputer with add_indicator")
    if imp.missing_values == imp.missing_values:  # only NaN is treated as missing
        raise Unsupported(f"SimpleImputer with missing_values={imp.missing_values!r}")
    fills = list(imp.statistics_)
    if len(fills) != len(cols) or any(v != v for v in fills):
        raise Unsupported("SimpleImputer drops an all-missing column")
    return second, fills


def _one_hot(
    enc: Any, cols: list[str], fills: list[Any], block: slice
) -> list[tuple[str, Any, dict[Any, int], int]]:
    """``(column, fill value, {category: position}, first output column)`` per column of a
    fitted OneHotEncoder that ignores unknown categories and drops none."""
    if getattr(enc, "_infrequent_enabled", False):
        raise Unsupported("OneHotEncoder with infrequent categories")
    if enc.handle_unknown != "ignore":
        raise Unsupported(f"OneHotEncoder with handle_unknown={enc.handle_unknown!r}")
    if enc.drop_idx_ is not None:
        raise Unsupported("OneHotEncoder with drop")
    if enc.dtype not in (np.float64, float):
        raise Unsupported(f"OneHotEncoder with dtype {enc.dtype!r}")
    out = []
    offset = block.start
    for col, fill, cats in zip(cols, fills, enc.categories_, strict=True):
        mapping = {v: i for i, v in enumerate(cats.tolist())}
        fill = fill.item() if isinstance(fill, np.generic) else fill
        out.append((col, fill, mapping, offset))
        offset += len(cats)
    if offset != block.stop:
        raise Unsupported("OneHotEncoder categories do not fill its output columns")
    return out
