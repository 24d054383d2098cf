"""Suggestions for a model made without code: which column to predict, whether that is
classification or regression, and which estimator to start with. Pure: a table in, plain
values out (no store, no HTTP, no widgets).

``inspect(frame)`` is what the "create a model" forms show before anything is stored: the
columns with their kinds, the suggested target, the kind of problem (with a reason a
non-programmer understands) and the suggested class.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pandas as pd

from .errors import BadRequest, PayloadTooLarge

DEFAULT_CLASSES = {
    "classifier": "RandomForestClassifier",
    "regressor": "RandomForestRegressor",
    "clusterer": "KMeans",
    "transformer": "PCA",
}
# Column names that usually hold what is to be predicted (compared case-insensitively), in order
TARGET_NAMES = (
    "target",
    "label",
    "class",
    "y",
    "outcome",
    "species",
    "survived",
    "churn",
    "diagnosis",
    "response",
    "result",
    "output",
)
# Whole numbers with at most this many distinct values are classes (0/1, ratings 1-5, ...)
MAX_INT_CLASSES = 10
# What the reason says of a target with fewer than two values (see ``has_values``)
ONE_VALUE = "a model cannot learn to predict it; choose a column with two or more values"
PREVIEW_ROWS = 10
# The widest table a preview describes (one entry per column, a form to pick from): MNIST's 785
# columns fit; 100,000 took minutes and an 8 MB answer. Wider tables are made over REST (PUT).
MAX_COLUMNS = 2000
_DATE = re.compile(
    r"^\s*(\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?"
    r"|\d{1,2}/\d{1,2}/\d{2,4}( \d{1,2}:\d{2}(:\d{2})?)?)\s*$"
)


def default_class(kind: str) -> str:
    """The estimator to start with for a kind of problem: a random forest for classification
    and regression (they need no scaling and rarely fail), KMeans, PCA."""
    try:
        return DEFAULT_CLASSES[kind]
    except KeyError:
        raise BadRequest(
            f"Expected a kind of model ({', '.join(DEFAULT_CLASSES)}), got {kind!r}."
        ) from None


def column_dtype(values: pd.Series) -> str:
    """ "number", "text", "date" or "bool": what a column holds, as a person would say it."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return "date"
    if pd.api.types.is_numeric_dtype(values.dtype):
        return "number"
    present = values.dropna()
    if len(present) and all(isinstance(v, bool) for v in present[:1000]):
        return "bool"
    if len(present):
        sample = present[:1000]
        if all(isinstance(v, str) and _DATE.match(v) for v in sample):
            return "date"
        if all(hasattr(v, "isoformat") for v in sample):
            return "date"
    return "text"


def infer_kind(y: pd.Series) -> tuple[str, str]:
    """("classifier" or "regressor", why), for the column ``y`` to predict. Text, yes/no
    values and whole numbers with few distinct values (0/1, ratings) are classes; other
    numbers are amounts."""
    name = str(y.name) if y.name is not None else "The target"
    present = y.dropna()
    distinct = int(present.nunique())
    dtype = column_dtype(y)
    if distinct < 2:  # nothing to learn: say so rather than "1 distinct values, so ..."
        kind = "regressor" if dtype == "number" and distinct == 0 else "classifier"
        held = f"only the value {str(present.iloc[0])[:100]!r}" if distinct else "no values"
        return kind, f"{name} holds {held}: {ONE_VALUE}"
    if dtype == "bool":
        return "classifier", f"{name} holds yes/no values, so this is classification"
    if dtype != "number":
        what = "dates" if dtype == "date" else "text values"
        return (
            "classifier",
            f"{name} holds {distinct} distinct {what}, so this is classification",
        )
    whole = bool(len(present)) and bool((present == present.round()).all())
    if whole and distinct <= MAX_INT_CLASSES and distinct < max(len(present), 2):
        return (
            "classifier",
            f"{name} holds {distinct} distinct whole numbers, so this is classification",
        )
    return "regressor", f"{name} holds {distinct} distinct numbers, so this is regression"


def has_values(y: pd.Series) -> bool:
    """Whether ``y`` holds two or more distinct values: something a model can learn."""
    return int(y.dropna().nunique()) >= 2


def suggest_target(frame: pd.DataFrame) -> str:
    """The column to predict: one named like a target (target, label, class, y, outcome,
    species, survived, ...; any case), else the last column."""
    if len(frame.columns) == 0:
        raise BadRequest("Expected a table with columns, got one with none. Send a CSV header.")
    by_name = {str(c).strip().lower(): str(c) for c in reversed(frame.columns)}
    for candidate in TARGET_NAMES:
        if candidate in by_name:
            return by_name[candidate]
    return str(frame.columns[-1])


def _preview(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The first rows as JSON records (missing values: null; dates: ISO text)."""
    head = frame.head(PREVIEW_ROWS).copy()
    head.columns = [str(c) for c in head.columns]
    return json.loads(head.to_json(orient="records", date_format="iso", default_handler=str))


def inspect(frame: pd.DataFrame, target: str | None = None) -> dict[str, Any]:
    """What a table looks like to the model maker: rows, columns (name, dtype, distinct,
    missing), the target (``target`` or the suggested one), the kind of problem and why, the
    suggested class, and the first rows."""
    if not isinstance(frame, pd.DataFrame):
        raise BadRequest(f"Expected a table, got {type(frame).__name__}.")
    names = [str(c) for c in frame.columns]
    if not names:
        raise BadRequest("Expected a table with columns, got one with none. Send a CSV header.")
    if len(names) > MAX_COLUMNS:
        raise PayloadTooLarge(
            f"Expected a table of at most {MAX_COLUMNS:,} columns to preview, got one of "
            f"{len(names):,}. Drop the columns the model does not need, or create the model "
            "over REST (PUT ?_model&class=...&target_col=..., then POST ?_action=retrain)."
        )
    counts = Counter(names)  # linear: a header of 100,000 names must not take minutes
    twice = sorted(n for n, k in counts.items() if k > 1)
    if twice:
        raise BadRequest(
            f"Expected each column name once, got {', '.join(map(repr, twice))} more than once. "
            "Rename the repeated columns."
        )
    if target is not None and str(target) not in names:
        raise BadRequest(
            f"Expected target_col to be one of the columns ({', '.join(names)}); got "
            f"{str(target)!r}. Choose one of those."
        )
    if not len(frame):
        raise BadRequest(
            f"Expected rows under the header, got a header of {len(names)} column(s) and no "
            "rows. Send the file with its data."
        )
    target = str(target) if target is not None else suggest_target(frame)
    # whole-frame counts, then one cheap look per column (no per-column pandas indexing)
    distinct = frame.nunique(dropna=True).tolist()
    missing = frame.isna().sum().tolist()
    columns = [
        {
            "name": name,
            "dtype": column_dtype(values),
            "distinct": int(distinct[i]),
            "missing": int(missing[i]),
        }
        for i, (name, (_, values)) in enumerate(zip(names, frame.items(), strict=True))
    ]
    y = frame.iloc[:, names.index(target)].rename(target)
    kind, why = infer_kind(y)
    return {
        "rows": int(len(frame)),
        "columns": columns,
        "target": target,
        "kind": kind,
        "reason": why,
        "class": default_class(kind),
        "preview": _preview(frame),
    }
