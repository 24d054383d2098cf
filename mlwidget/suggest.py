"""Suggestions for a model made without code: which column to predict, whether that is
classification or regression, and which estimator to start with. Pure: a table in, plain
values out (no store, no HTTP, no widgets).

``inspect(frame)`` is what the "create a model" forms show before anything is stored: the
columns with their kinds, the suggested target, the kind of problem (with a reason a
non-programmer understands) and the suggested class.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from typing import Any

import pandas as pd

from . import dates
from .errors import BadRequest, MLWidgetError, PayloadTooLarge

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
# Column names that say "an identifier" (compared case-insensitively): never a target
_ID_NAME = re.compile(r"(?i)^(id|index|idx|key|uuid|guid|rowid|row|row_?(id|num|number))$|[_\W]id$")
_CAMEL_ID = re.compile(r"[a-z]Id$")  # PassengerId, customerId


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
    return "date" if dates.looks_like_dates(values) else "text"


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


def identifier(values: pd.Series, rows: int | None = None) -> bool:
    """Whether a column names its rows rather than describing them: named like an id
    (``id``, ``index``, ``PassengerId``, ``customer_id``, ...), or a date, or one distinct
    value per row of text or whole numbers (ids, names, one date per row). Such a column is
    never suggested as the target. Fractional numbers may all differ (amounts): they may be."""
    name = str(values.name) if values.name is not None else ""
    if _ID_NAME.search(name.strip()) or _CAMEL_ID.search(name.strip()):
        return True
    dtype = column_dtype(values)
    if dtype == "date":
        return True
    rows = len(values) if rows is None else rows
    if rows < 3 or dtype == "bool" or values.isna().any():
        return False
    if int(values.nunique()) < rows:
        return False
    if dtype == "number":  # whole numbers counting rows (1, 2, 3...), not counts or amounts
        whole = bool((values == values.round()).all())
        ordered = values.is_monotonic_increasing or values.is_monotonic_decreasing
        return whole and (ordered or float(values.max() - values.min()) == rows - 1)
    return True


def suggest_target(frame: pd.DataFrame) -> str:
    """The column to predict: one named like a target (target, label, class, y, outcome,
    species, survived, ...; any case), else the last column; never an identifier (see
    :func:`identifier`) while another column is left."""
    if len(frame.columns) == 0:
        raise BadRequest("Expected a table with columns, got one with none. Send a CSV header.")
    names = [str(c) for c in frame.columns]
    ids = {n for n, (_, values) in zip(names, frame.items(), strict=True) if identifier(values)}
    usable = [n for n in names if n not in ids] or names
    by_name = {n.strip().lower(): n for n in reversed(usable)}
    for candidate in TARGET_NAMES:
        if candidate in by_name:
            return by_name[candidate]
    return usable[-1]


def pick_note(frame: pd.DataFrame) -> list[str]:
    """What :func:`inspect` would pick for ``frame``, as a sentence for a model made from
    Python without a target (``MLModel(name, data=...)``; also logged); none for a table it
    cannot suggest for."""
    try:
        found = inspect(frame)
    except MLWidgetError:
        return []
    read = f"; {', '.join(found['dates'])} read as dates (dates=[] turns that off)"
    note = (
        f"No target_col was given, so the model was not trained. The suggestion: "
        f"target_col={found['target']!r} ({found['reason']}), class {found['class']!r}"
        f"{read if found['dates'] else ''}. Pass target_col to train it."
    )
    logging.getLogger("mlwidget").info("mlwidget: %s", note)
    return [note]


def _preview(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The first rows as JSON records (missing values: null; dates: ISO text)."""
    head = frame.head(PREVIEW_ROWS).copy()
    head.columns = [str(c) for c in head.columns]
    return json.loads(head.to_json(orient="records", date_format="iso", default_handler=str))


def inspect(
    frame: pd.DataFrame, target: str | None = None, dates_: list[str] | None = None
) -> dict[str, Any]:
    """What a table looks like to the model maker: rows, columns (name, dtype, distinct,
    missing), the target (``target`` or the suggested one), the kind of problem and why, the
    suggested class, the feature columns read as dates (``dates_``, checked, or those that
    look like dates: the ``dates`` option), the identifier columns (never suggested as the
    target), and the first rows."""
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
    features = [n for n in names if n != target]
    read = dates.choose(
        frame.set_axis(names, axis=1), features, {"dates": dates_, "target_col": target}
    )
    return {
        "rows": int(len(frame)),
        "columns": columns,
        "target": target,
        "kind": kind,
        "reason": why,
        "class": default_class(kind),
        "dates": read,
        "ids": [
            c["name"] for c, (_, v) in zip(columns, frame.items(), strict=True) if identifier(v)
        ],
        "preview": _preview(frame),
    }
