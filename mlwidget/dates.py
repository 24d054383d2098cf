"""Date and time columns: which columns hold dates, and the pipeline step that reads them as
numbers (year, month, day, weekday and the day's ordinal) instead of one category per date.

A column holds dates when every value (of the first thousand present) is a date or time object,
or text in an ISO form (``2021-03-04``, ``2021-03-04T10:30:00Z``, ``2021-03-04 10:30``) or a
day/month/year form (``04/03/2021``), and pandas reads them all as dates. Whole numbers (years
such as 1972) stay numbers. The same test serves the suggestions (suggest.py) and training
(the ``dates`` option: ``None`` detects, a list names the columns, ``[]`` turns it off).

``DateFeatures`` is a scikit-learn transformer: a fitted pipeline reads raw date text at
prediction time the same way on every face (GET query, POST rows, V2, Python).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from .errors import BadRequest

# What each date column becomes, in this order: ``<column>_<part>``
PARTS = ("year", "month", "day", "weekday", "ordinal")
SAMPLE = 1000  # values looked at to decide that a column holds dates
# date.toordinal() of 1970-01-01: the ordinal is days since the epoch plus this
_EPOCH_ORDINAL = 719163
_DATE = re.compile(
    r"^\s*(\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?"
    r"|\d{1,2}/\d{1,2}/\d{2,4}( \d{1,2}:\d{2}(:\d{2})?)?)\s*$"
)
EXAMPLE = "2021-03-04 or 2021-03-04T10:30:00"


def parse(values: Iterable[Any]) -> pd.Series:
    """``values`` as naive UTC timestamps (missing, unreadable or a number: NaT). Text with and
    without time zones mixes freely; a time zone is converted to UTC."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        out = pd.to_datetime(series, utc=True)
    else:
        text = series.astype(object).map(_text_or_date)  # a number is no date (not epochs)
        out = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    return out.dt.tz_convert(None)


def _text_or_date(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    return value if hasattr(value, "isoformat") else None


def looks_like_dates(values: pd.Series) -> bool:
    """Whether ``values`` holds dates or times (see the module's docstring)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return True
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return False
    sample = values.dropna()[:SAMPLE]
    if not len(sample):
        return False
    if not all(
        (isinstance(v, str) and _DATE.match(v))
        or (hasattr(v, "isoformat") and not isinstance(v, str))
        for v in sample
    ):
        return False
    return bool(parse(sample).notna().all())


def choose(frame: pd.DataFrame, features: Sequence[str], options: Mapping[str, Any]) -> list[str]:
    """The feature columns of ``frame`` to read as dates: those the ``dates`` option lists (each
    checked: a feature, not in cats or nums, every value a date), or, when it is None, those
    that look like dates and are not forced categorical or numeric."""
    cats = set(options.get("cats") or [])
    nums = set(options.get("nums") or [])
    asked = options.get("dates")
    if asked is None:
        return [
            c for c in features if c not in cats and c not in nums and looks_like_dates(frame[c])
        ]
    target = options.get("target_col")
    for name in asked:
        if name == target:
            raise BadRequest(
                f"dates lists {name!r}, the target column: a model predicts its target, it does "
                "not read it. Remove it from dates, or choose another target_col."
            )
        if name not in features:
            raise BadRequest(
                f"dates lists {name!r}, which is not a feature column (features: "
                f"{', '.join(map(repr, features))}). Set dates to feature columns, or dates=[] "
                "for none."
            )
        if name in cats or name in nums:
            where = "cats" if name in cats else "nums"
            raise BadRequest(
                f"dates lists {name!r}, which {where} lists too. Keep it in one of them."
            )
        check_column(name, frame[name])
    return [c for c in features if c in asked]


def check_column(name: str, values: pd.Series) -> None:
    """A 400 naming the first value of ``values`` that is present but not a date."""
    parsed = parse(values)
    blank = values.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
    bad = parsed.isna().to_numpy() & values.notna().to_numpy() & ~blank
    if bad.any():
        row = int(bad.nonzero()[0][0])
        raise BadRequest(
            f"Expected a date for column {name!r} (such as {EXAMPLE}), got "
            f"{str(values.iloc[row])[:60]!r} (row {row + 1}). Send a date or leave it empty."
        )


def check(frame: pd.DataFrame, features: Iterable[Mapping[str, Any]]) -> None:
    """A 400 for a value that is not a date in a column the model reads as dates."""
    for f in features:
        if f.get("kind") == "date" and f["name"] in frame:
            check_column(f["name"], frame[f["name"]])


def latest(values: pd.Series) -> Any:
    """The most recent date of ``values``, written as the data wrote it (a typical value)."""
    parsed = parse(values)
    if not parsed.notna().any():
        return None
    value = values.iloc[int(np.nanargmax(parsed.to_numpy(dtype="datetime64[ns]").astype("int64")))]
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class DateFeatures(TransformerMixin, BaseEstimator):
    """Each column of dates as five numbers: year, month, day, weekday (Monday 0) and the
    ordinal (``date.toordinal()``, which orders and spaces the dates). Missing or unreadable
    dates are NaN (the pipeline's imputer fills them)."""

    def fit(self, X: Any, y: Any = None) -> DateFeatures:
        frame = _frame(X)
        self.n_features_in_ = frame.shape[1]
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = _frame(X)
        blocks = []
        for i in range(frame.shape[1]):
            when = parse(frame.iloc[:, i])
            days = when.dt.floor("D")
            ordinal = (days - pd.Timestamp("1970-01-01")).dt.days + _EPOCH_ORDINAL
            parts = [when.dt.year, when.dt.month, when.dt.day, when.dt.day_of_week, ordinal]
            blocks.append(
                np.column_stack([p.to_numpy(dtype=np.float64, na_value=np.nan) for p in parts])
            )
        if not blocks:
            return np.zeros((len(frame), 0))
        return np.hstack(blocks)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = input_features if input_features is not None else self.feature_names_in_
        return np.asarray([f"{c}_{p}" for c in names for p in PARTS], dtype=object)


def _frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X, dtype=object)
    return pd.DataFrame(array.reshape(len(array), -1))
