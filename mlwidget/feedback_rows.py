"""The training rows labelled feedback gives (``?_action=append&from=feedback``,
``MLModel.append_feedback``): each labelled prediction's logged input row, with its ``actual``
in the target column, in the stored training data's columns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from .errors import BadRequest
from .feedback import parsed


def training_rows(
    labelled: pd.DataFrame, stored: pd.DataFrame | None, state: Mapping[str, Any]
) -> pd.DataFrame:
    """The training rows ``labelled`` feedback gives (latest(), with an actual each): the
    logged input row and the actual in the target column; a column the model does not read
    is empty. The columns are the stored table's (else the features and the target)."""
    target = (state.get("options") or {}).get("target_col")
    if not target:
        raise BadRequest(
            "Expected a model with a target column to append labelled feedback to; set "
            "target_col first (PUT ?_model&target_col=...)."
        )
    if stored is not None:
        columns = [str(c) for c in stored.columns]
    else:
        names = [f["name"] for f in state.get("schema") or []]
        columns = list(state.get("data_columns") or [*names, target])
    inputs = parsed(labelled["input"])
    actuals = parsed(labelled["actual"])
    records = [
        {c: actual if c == target else (row or {}).get(c) for c in columns}
        for row, actual in zip(inputs, actuals, strict=True)
    ]
    frame = pd.DataFrame.from_records(records, columns=columns)
    if stored is not None:  # whole numbers back to an integer column's type (3.0 -> 3)
        for name in columns:
            kind, col = stored[name].dtype, frame[name]
            if pd.api.types.is_integer_dtype(kind) and col.notna().all():
                numbers = pd.to_numeric(col, errors="coerce")
                if numbers.notna().all() and (numbers % 1 == 0).all():
                    frame[name] = numbers.astype(kind)
    return frame
