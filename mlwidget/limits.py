"""Ceilings on what one request (or one call) can make a process spend.

The server sets them from ``MLWidgetApp`` traitlets when it starts (``configure``); a kernel or
script uses these defaults or calls ``configure`` itself. Each is checked before the memory is
spent, and going past one is a clear error (413), never a crash.
"""

from __future__ import annotations

from typing import Any

# One-hot columns per categorical column: rarer values are grouped into one "infrequent"
# category (with a warning in the model info), so a column of 20,000 distinct values costs 100
# columns, not 20,000.
MAX_CATEGORIES = 100
# Rows x encoded columns of the matrix a fit works on (float64: 8 bytes a cell; 1.6 GB).
MAX_MATRIX_CELLS = 200_000_000

# Cross-validation of a fit (the cv_score beside the training score): skipped, with a warning,
# for more rows than this, or when the folds' fits would take longer than CV_SECONDS (judged by
# the fit's own time).
CV_FOLDS = 5
CV_MAX_ROWS = 100_000
CV_SECONDS = 20

NAMES = ("MAX_CATEGORIES", "MAX_MATRIX_CELLS", "CV_FOLDS", "CV_MAX_ROWS", "CV_SECONDS")


def configure(**values: Any) -> None:
    """Set ceilings by name (``configure(MAX_CATEGORIES=50)``); unknown names are an error."""
    for name, value in values.items():
        if name not in NAMES:
            raise ValueError(f"Unknown limit {name!r}; expected one of {', '.join(NAMES)}.")
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"Expected limit {name} to be a positive integer, got {value!r}.")
        globals()[name] = value
