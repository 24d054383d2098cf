"""An inference request's values as the columns of a table: numbers (and text that reads as
numbers, for a numeric feature) as float64 arrays, built at once; many texts of a text feature
in pandas' own text dtype; anything else as objects, which the model's casting reads value by
value. Typed columns spare pandas its per-value inference, the bulk of building a 10,000-row
frame. See ``oip.request_columns``, which decodes the request into these."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import BadRequest
from .fastpath.base import MAX_ROWS as FEW  # up to this many rows: the compiled predictor
from .schema import inferred_text_dtype

_NONE = type(None)


def typed_column(name: str, values: list[Any], numeric: bool) -> np.ndarray:
    """One feature's values as a typed array: float64 when they all read as numbers ("3" ->
    3.0 for a numeric feature), else objects (a word in a number column is then the model's
    400 naming it). An integer beyond float64's range (JSON allows 400 digits) in a numeric
    feature is a 400 naming the feature."""
    if numeric or (values and not isinstance(values[0], str)):
        try:
            return _floats(values)
        except (ValueError, TypeError):
            pass
        except OverflowError:
            if numeric:
                raise BadRequest(_too_large(name, values)) from None
    return np.array(values, dtype=object)


def table_column(values: np.ndarray, numeric: bool) -> pd.Series:
    """A column of the table. Many texts of a text feature go in pandas' own text dtype (where
    pandas has one): the model's casting then reads them whole, as it would have made them."""
    if values.dtype != object:
        return pd.Series(values)
    if not numeric and len(values) > FEW:
        text, kinds = inferred_text_dtype(), set(map(type, values))
        if text != np.dtype(object) and str in kinds and kinds <= {str, _NONE}:
            return pd.Series(values, dtype=text)
    return pd.Series(values, dtype=object)


def _too_large(name: str, values: list[Any]) -> str:
    """Why a numeric feature's values are not numbers: its first integer past float64."""
    for at, value in enumerate(values):
        try:
            float(value)
        except OverflowError:
            try:
                text = str(value)
                shown = f"{text[:14]}... ({len(text.lstrip('-')):,} digits)"
            except ValueError:  # past Python's own limit of digits: JSON never gets here
                shown = "an integer of thousands of digits"
            return (
                f"Expected a number for {name!r}, got {shown} in row "
                f"{at + 1}: past the largest number a model reads (FP64, about 1.8e308). Send "
                "a smaller number, or null for a missing value."
            )
        except (ValueError, TypeError):
            continue
    return f"Expected numbers for {name!r}: its values are past the range of FP64."


def _floats(values: list[Any]) -> np.ndarray:
    """``np.asarray(values, dtype=float64)``. Many texts (a category sent as BYTES: "3") are
    converted once per distinct text, not once per value: the same numbers, several times
    faster on 10,000 rows."""
    if len(values) > FEW and isinstance(values[0], str) and set(map(type, values)) <= {str, _NONE}:
        codes, uniques = pd.factorize(np.array(values, dtype=object))  # None: code -1
        return np.append(np.asarray(uniques, dtype=np.float64), np.nan)[codes]
    return np.asarray(values, dtype=np.float64)
