"""The feature schema: which columns a model uses, how they are typed, and training frames.

Training decides the features (include/exclude, target), their kinds (categorical or numeric,
forced by ``cats``/``nums``), typical values and categories. Prediction inputs are cast to the
same types, so a URL's strings, JSON's numbers and a CSV's columns all reach the pipeline alike.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from . import dates
from . import estimators as est
from . import options as opt
from .errors import BadRequest

MAX_CATEGORIES = 500


def column_warnings(options: Mapping[str, Any], columns: list[str] | None) -> list[str]:
    if not columns:
        return []
    out = []
    for key in opt.LIST_OPTIONS:
        unknown = [c for c in options.get(key) or [] if c not in columns]
        if unknown:
            out.append(
                f"{key} lists {', '.join(map(repr, unknown))}, which the training data does not "
                "have; ignored."
            )
    target = options.get("target_col")
    if target and target not in columns:
        out.append(f"target_col {target!r} is not a column of the training data.")
    return out


def training_frame(
    table: pd.DataFrame, options: Mapping[str, Any], kind: str | None
) -> tuple[pd.DataFrame, pd.Series | None, list[dict[str, Any]], list[str]]:
    columns = [str(c) for c in table.columns]
    if list(table.columns) != columns:  # (not a copy of the whole table when they are text)
        table = table.set_axis(columns, axis=1)
    warns = column_warnings(options, columns)
    target = options.get("target_col")
    supervised = kind in ("classifier", "regressor")
    if supervised:
        if not target:
            raise BadRequest(
                f"Expected a target column for a {kind}, got none. Set target_col (REST: "
                "?_action=retrain&target_col=Survived)."
            )
        if target not in columns:
            raise BadRequest(
                f"Expected the target column {target!r} in the training data, got columns "
                f"{', '.join(columns)}. Set target_col to one of them."
            )
    include = [c for c in options.get("include") or [] if c in columns]
    if include:
        features = [c for c in include if c != target]
    else:
        excluded = set(options.get("exclude") or [])
        features = [c for c in columns if c not in excluded and c != target]
    if not features:
        raise BadRequest("Expected at least one feature column after include/exclude, got none.")
    used = features + ([target] if supervised else [])
    frame = table[used]
    dropna = bool(options.get("dropna", True))
    if dropna:  # every row with a missing value goes, the target's included
        frame = frame.dropna()
    elif supervised:
        frame = frame[frame[target].notna()]
    if options.get("deduplicate", True):
        frame = frame.drop_duplicates()
    if frame.empty:
        raise BadRequest(
            "No training rows are left after dropping missing values and duplicates. Set "
            "dropna=false, or fix the data."
        )
    cats = set(options.get("cats") or [])
    nums = set(options.get("nums") or [])
    read_dates = set(dates.choose(frame, features, {**options, "target_col": target}))
    schema = []
    for name in features:
        series = frame[name]
        if name in read_dates:  # text in, numbers out: the pipeline's DateFeatures step
            latest = dates.latest(series.dropna())
            kinds = {"name": name, "kind": "date", "dtype": "string", "categories": None}
            schema.append({**kinds, "default": latest})
            continue
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        if name in nums and not numeric:
            converted = to_numbers(series)
            if converted.notna().sum() < series.notna().sum():
                raise BadRequest(
                    f"nums lists {name!r}, but it has values that are not numbers "
                    f"(e.g. {series[converted.isna() & series.notna()].iloc[0]!r})."
                )
            numeric = True
        is_cat = name in cats or (name not in nums and not numeric)
        entry: dict[str, Any] = {
            "name": name,
            "kind": "category" if is_cat else "number",
            "dtype": "number" if numeric else "string",
        }
        if numeric and pd.api.types.is_integer_dtype(series):
            entry["integer"] = True  # whole numbers in training (MLflow's signature: long)
        clean = series if dropna else series.dropna()  # (dropna left no missing value)
        if is_cat:
            values = clean if numeric or pd.api.types.is_string_dtype(clean.dtype) else None
            if values is None or values.dtype == object:  # text of any Python object
                values = clean.map(str)
            counts = values.value_counts()
            entry["categories"] = est.to_jsonable(
                sorted(counts.index.tolist(), key=str)[:MAX_CATEGORIES]
            )
            entry["default"] = est.to_jsonable(counts.index[0]) if len(counts) else None
        else:
            entry["categories"] = None
            as_numbers = clean if pd.api.types.is_numeric_dtype(clean) else to_numbers(clean)
            entry["default"] = est.to_jsonable(float(as_numbers.median())) if len(clean) else None
            if entry["default"] is not None and pd.api.types.is_integer_dtype(series):
                entry["default"] = int(round(entry["default"]))
        schema.append(entry)
    X = cast(frame[features].reset_index(drop=True), schema)
    y = frame[target].reset_index(drop=True) if supervised else None
    return X, y, schema, warns


def cast(frame: pd.DataFrame, features: list[dict[str, Any]]) -> pd.DataFrame:
    """Type the columns as in training; a value that cannot be cast is a 400 naming it.

    Columns that need no per-value decision (numbers for a numeric feature; text or missing
    values for a text feature) are cast whole; the others value by value, with the same results.
    """
    if not frame.columns.is_unique:
        typed = _cast_values(frame, features)
        dates.check(typed, features)
        return typed
    out = {}
    for f in features:
        name = f["name"]
        fast = _cast_column(frame[name], f["dtype"])
        out[name] = fast if fast is not None else _cast_values(frame[[name]], [f])[name]
    typed = pd.DataFrame(out, index=frame.index)
    dates.check(typed, features)  # a date column's values must read as dates
    return typed


def _cast_column(col: pd.Series, dtype: str) -> pd.Series | None:
    kind = col.dtype.kind
    if dtype == "number":
        if kind in "iuf" and not isinstance(col.dtype, pd.api.extensions.ExtensionDtype):
            return col.astype(np.float64)
        return None
    if col.dtype == inferred_text_dtype() and col.dtype != object:
        # pandas' own text dtype (pandas 3 "str"): stays in its (Arrow) storage
        out = col.where(col != "")
        return None if out.isna().all() else out
    if kind == "O" and pd.api.types.infer_dtype(col, skipna=True) == "string":
        values = col.to_numpy(dtype=object, copy=True)
        values[pd.isna(values) | (values == "")] = np.nan
        if pd.isna(values).all():
            return None  # all missing: let _cast_values pick the dtype
        return pd.Series(values.tolist(), index=col.index)
    return None


@functools.cache
def inferred_text_dtype() -> Any:
    """The dtype pandas infers for text (what _cast_values' ``map`` produces)."""
    return pd.Series(["a", np.nan]).dtype


def _cast_values(frame: pd.DataFrame, schema: list[dict[str, Any]]) -> pd.DataFrame:
    """Type the columns value by value; a value that cannot be cast is a 400 naming it."""
    out = {}
    for f in schema:
        name = f["name"]
        col = frame[name]
        if f["dtype"] == "number":
            if pd.api.types.is_bool_dtype(col):
                col = col.astype(float)
            raw = col.astype(object).where(col.notna(), None)
            blank = raw.map(lambda v: isinstance(v, str) and not v.strip())
            raw = raw.where(~blank, None)
            num = to_numbers(raw)
            bad = num.isna() & raw.notna()
            if bad.any():
                first = raw[bad].iloc[0]
                raise BadRequest(
                    f"Expected a number for column {name!r}, got {first!r} (row "
                    f"{int(bad.to_numpy().nonzero()[0][0]) + 1}). Send a number or leave it empty."
                )
            out[name] = num.astype(float)
        else:
            values = col.astype(object)
            mask = values.notna() & values.map(lambda v: not (isinstance(v, str) and v == ""))
            out[name] = values.where(mask, np.nan).map(
                lambda v: v if isinstance(v, float) and np.isnan(v) else _str(v)
            )
    return pd.DataFrame(out, index=frame.index)


def to_numbers(raw: pd.Series) -> pd.Series:
    """``pd.to_numeric(raw, errors="coerce")``, where an integer too large for a float (JSON
    allows any) is not a number instead of an OverflowError."""
    try:
        return pd.to_numeric(raw, errors="coerce")
    except OverflowError:
        return pd.to_numeric(raw.map(_float_or_not_a_number), errors="coerce")


def _float_or_not_a_number(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return "not a number"
    return value


def _str(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def cast_target(y: pd.Series, dtype: str | None) -> pd.Series:
    if not dtype:
        return y
    try:
        if dtype.startswith(("int", "float", "bool")):
            return (
                pd.to_numeric(y).astype(pd.api.types.pandas_dtype(dtype))
                if not dtype.startswith("bool")
                else y.astype(bool)
            )
        return y.astype(str)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"Expected target values of type {dtype}, got {y.iloc[0]!r}.") from None


def align_dtypes(new: pd.DataFrame, old: pd.DataFrame) -> pd.DataFrame:
    """Cast appended columns to the stored dtypes where the stored column is numeric."""
    out = new.copy()
    for name in old.columns:
        if pd.api.types.is_numeric_dtype(old[name]) and not pd.api.types.is_numeric_dtype(
            out[name]
        ):
            raw = out[name].astype(object).where(out[name].notna(), None)
            raw = raw.where(raw.map(lambda v: not (isinstance(v, str) and not v.strip())), None)
            num = to_numbers(raw)
            bad = num.isna() & raw.notna()
            if bad.any():
                raise BadRequest(
                    f"Expected numbers in column {name!r} (as in the training data), got "
                    f"{raw[bad].iloc[0]!r}. Nothing was appended."
                )
            out[name] = num
    return out


def schema_from_estimator(model: Any) -> list[dict[str, Any]] | None:
    """A schema for a model brought without training data: its declared features."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return None
    categories: dict[str, list[Any]] = {}
    for step in _walk(model):
        for item in getattr(step, "transformers_", None) or []:
            cols = item[2]
            for inner in _walk(item[1]):
                cats = getattr(inner, "categories_", None)
                if cats is not None and isinstance(cols, list) and len(cols) == len(cats):
                    for col, values in zip(cols, cats, strict=True):
                        categories[str(col)] = est.to_jsonable([v for v in values if v == v])
    schema = []
    for name in map(str, names):
        if name in categories:
            values = categories[name]
            numeric = all(isinstance(v, int | float) for v in values)
            schema.append(
                {
                    "name": name,
                    "kind": "category",
                    "dtype": "number" if numeric else "string",
                    "categories": values,
                    "default": values[0] if values else None,
                }
            )
        else:
            schema.append(
                {
                    "name": name,
                    "kind": "number",
                    "dtype": "number",
                    "categories": None,
                    "default": 0,
                }
            )
    return schema


def _walk(model: Any) -> Iterable[Any]:
    """The model and every estimator nested in its pipelines and column transformers."""
    yield model
    for attr in ("steps", "transformers_"):
        for item in getattr(model, attr, None) or []:
            if hasattr(item[1], "get_params"):
                yield from _walk(item[1])
