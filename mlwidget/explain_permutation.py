"""The permutation method of explanations (explaining.py): shap's PermutationExplainer on the
whole pipeline, over the input columns, for the models no exact method reads. Bounded: a
background of ``BACKGROUND_ROWS`` training rows and at most ``EVALS`` evaluations (masked
copies of a row, each predicted once per background row) a row, fewer for many rows (at most
``BUDGET`` rows predicted a request, and never fewer than two permutations). The contributions
are estimates, but they add up: ``base_value + sum(contributions) == value``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import BadRequest, reason

BACKGROUND_ROWS = 20  # training rows the method replaces a row's values from
EVALS = 300  # most evaluations of one row
BUDGET = 100_000  # rows the model predicts for one request (at least 2 permutations a row)


def explain(
    shap: Any,
    pipeline: Any,
    frame: pd.DataFrame,
    background: pd.DataFrame,
    kind: str,
    wanted: np.ndarray,
) -> tuple[Any, ...]:
    """``(values, base values, what they are, contributions (rows x columns), note)`` of the
    rows of ``frame`` (typed as the model reads them) for the output ``wanted`` of each (a
    class's index; 0 for a regressor), measured from the rows of ``background``."""
    names = list(frame.columns)
    both = pd.concat([background, frame], ignore_index=True)
    # shap's masker compares numbers: each column is coded as positions in its own values
    codes, uniques = {}, {}
    for column in names:
        codes[column], uniques[column] = pd.factorize(both[column], use_na_sentinel=False)
    coded = np.column_stack([codes[c] for c in names]).astype(float)
    dtypes = both.dtypes
    what = "prediction" if kind == "regressor" else "probability"
    if kind == "classifier" and not hasattr(pipeline, "predict_proba"):
        what = "margin"

    def model(matrix: np.ndarray) -> np.ndarray:
        decoded = pd.DataFrame(
            {
                c: pd.Series(np.asarray(uniques[c], dtype=object)[matrix[:, j].astype(int)]).astype(
                    dtypes[c]
                )
                for j, c in enumerate(names)
            }
        )
        if what == "probability":
            return np.asarray(pipeline.predict_proba(decoded), dtype=float)
        method = pipeline.predict if what == "prediction" else pipeline.decision_function
        return np.asarray(method(decoded), dtype=float).reshape(len(decoded), -1)

    rows, width = len(frame), len(names)
    per_row = BUDGET // max(1, rows * len(background))
    evals = max(2 * (2 * width + 1), min(EVALS, per_row))
    masker = shap.maskers.Independent(coded[: len(background)], max_samples=len(background))
    explainer = shap.PermutationExplainer(model, masker, seed=0)
    try:
        result = explainer(coded[len(background) :], max_evals=evals, silent=True)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"The model could not be explained on these rows: {reason(exc)}") from None
    values = np.asarray(result.values, dtype=float).reshape(rows, width, -1)
    base = np.asarray(result.base_values, dtype=float).reshape(rows, -1)
    own = base + values.sum(axis=1)
    index = np.arange(rows)
    if values.shape[2] > 1:
        picked, picked_base, value = (
            values[index, :, wanted],
            base[index, wanted],
            own[index, wanted],
        )
    elif kind == "classifier":  # one margin: class 1's
        sign = np.where(wanted == 1, 1.0, -1.0)
        picked, picked_base, value = (
            values[:, :, 0] * sign[:, None],
            base[:, 0] * sign,
            own[:, 0] * sign,
        )
    else:
        picked, picked_base, value = values[:, :, 0], base[:, 0], own[:, 0]
    note = (
        f"approximate: shap's PermutationExplainer with {len(background)} background rows "
        f"and at most {evals} evaluations a row; base_value + contributions = value"
    )
    return value, picked_base, what, picked, note
