"""What every part of the fast path shares: the row limit and the exception that declines."""

from __future__ import annotations

from typing import Any

MAX_ROWS = 64


class Unsupported(Exception):
    """This input (or model) is for the full pipeline.

    ``reason`` says why, in words a user can read: every refusal while compiling gives one
    (``compile_model`` reports it). Refusals of one input give none: the pipeline answers it.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class TooLarge(Unsupported):
    """Trees too large to copy into arrays: the estimator's own predict answers."""


def sklearn_private(obj: Any, name: str) -> Any:
    """``obj.name`` (``name`` may be dotted: ``"_forest.ForestClassifier"``), a private part of
    scikit-learn the fast path relies on: a scikit-learn version without it is for the pipeline."""
    try:
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj
    except AttributeError:
        raise Unsupported(
            f"scikit-learn private attribute {name} missing: this scikit-learn version is not "
            "supported by the fast path"
        ) from None
