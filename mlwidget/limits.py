"""Ceilings on what one request (or one call, or one job) can make a process spend: one
``Limits`` object.

The server builds it from ``MLWidgetApp`` traitlets when it starts (``configure``); a kernel or
script uses the defaults or calls ``configure`` itself. ``current()`` is the ``Limits`` in force
here: the process default, or the one a job carries while its work runs (``using``). A job's
payload carries the ``Limits`` it was started under, so a worker process (reused across jobs)
or a Dask worker applies the caller's ceilings, not its own defaults. Each ceiling is checked
before the memory is spent, and going past one is a clear error (413), never a crash.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from numbers import Integral, Real
from typing import Any

from .errors import BadRequest


@dataclasses.dataclass(frozen=True, init=False)
class Limits:
    """Every ceiling, by the name of its ``MLWidgetApp`` setting.
    ``Limits(max_table_cells=10_000)``: the defaults, with that one changed; an unknown name
    or a bad value is a ``BadRequest`` naming the setting."""

    # Rows x columns of a table read from a body, upload or file, and of any answer a model
    # builds (predictions, probabilities, a transformer's output).
    max_table_cells: int = 50_000_000
    # One-hot columns per categorical column: rarer values are grouped into one "infrequent"
    # category (with a warning in the model info), so a column of 20,000 distinct values costs
    # 100 columns, not 20,000.
    max_categories: int = 100
    # Rows x encoded columns of the matrix a fit works on (float64: 8 bytes a cell; 1.6 GB).
    max_matrix_cells: int = 200_000_000
    # Bytes of a request body or upload (the server's handlers check it as it arrives).
    max_body_size: int = 256 * 1024 * 1024
    # Cross-validation of a fit (the cv_score beside the training score): cv_folds folds (0:
    # none), skipped with a warning for more rows than cv_max_rows, or when the folds' fits
    # would take longer than cv_seconds (judged by the fit's own time).
    cv_folds: int = 5
    cv_max_rows: int = 100_000
    cv_seconds: float = 20
    # Rows one explanation request (?_action=explain, MLModel.explain) may explain.
    max_explain_rows: int = 100

    def __init__(self, **values: Any) -> None:
        values = {_field(name): value for name, value in values.items()}
        for field in dataclasses.fields(self):
            value = values.get(field.name, field.default)
            object.__setattr__(self, field.name, _valid(field.name, value))

    def replace(self, **changes: Any) -> Limits:
        """A copy with ``changes`` (field names, or the old upper-case names)."""
        return Limits(**{**self.as_dict(), **{_field(k): v for k, v in changes.items()}})

    def as_dict(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


FIELDS = tuple(field.name for field in dataclasses.fields(Limits))


def _field(name: str) -> str:
    if name not in FIELDS:
        raise BadRequest(f"Unknown limit {name!r}; expected one of {', '.join(FIELDS)}.")
    return name


def _valid(name: str, value: Any) -> Any:
    """``value`` if it is a valid ``name``, else a BadRequest naming the setting."""
    setting = f"{name} (MLWidgetApp.{name})"
    number = isinstance(value, Real) and not isinstance(value, bool)  # True is an Integral
    integer = number and isinstance(value, Integral)
    if name == "cv_seconds":
        if number and math.isfinite(value) and value > 0:
            return value
        raise BadRequest(f"Expected {setting} to be a positive number of seconds, got {value!r}.")
    if name == "cv_folds":
        if integer and (value == 0 or value >= 2):
            return int(value)
        raise BadRequest(
            f"Expected {setting} to be 0 (no cross-validation) or an integer of at least 2, "
            f"got {value!r}."
        )
    if integer and value >= 1:
        return int(value)
    raise BadRequest(f"Expected {setting} to be a positive integer, got {value!r}.")


# $MLWIDGET_CV_FOLDS: this process's default number of folds (0: no cross-validation), for a
# kernel, a script or a server (MLWidgetApp.cv_folds defaults to it), and what they start.
ENV_CV_FOLDS = "MLWIDGET_CV_FOLDS"


def from_environment() -> Limits:
    """The defaults, with ``cv_folds`` from ``$MLWIDGET_CV_FOLDS`` when it is set. A value that
    is not a count of folds is a ``BadRequest`` saying what was expected."""
    text = os.environ.get(ENV_CV_FOLDS, "").strip()
    if not text:
        return Limits()
    folds = int(text) if text.isascii() and text.isdigit() and len(text) < 7 else -1
    if folds < 0 or folds == 1:
        raise BadRequest(
            f"Expected ${ENV_CV_FOLDS} to be 0 (no cross-validation) or an integer of at least "
            f"2, got {text!r}. Set it to a number of folds, or unset it for 5."
        )
    return Limits(cv_folds=folds)


def folds_from_environment(warn: Callable[[str], None]) -> int:
    """``$MLWIDGET_CV_FOLDS``'s folds, or the default 5 when it is bad, told to ``warn``: what
    starts a process (importing mlwidget, a server's start) must not fail on it."""
    try:
        return from_environment().cv_folds
    except BadRequest as exc:
        warn(f"{exc} Using cv_folds={Limits().cv_folds}.")
        return Limits().cv_folds


_default = Limits(cv_folds=folds_from_environment(lambda text: warnings.warn(text, stacklevel=3)))
_lock = threading.Lock()
# The Limits a job's work runs under (``using``): per thread and per asyncio task, so a job on
# a thread of the server (executor="thread", a Dask worker's thread) changes nothing else.
_active: contextvars.ContextVar[Limits | None] = contextvars.ContextVar("mlwidget_limits")


def current() -> Limits:
    """The ceilings in force here: the job's while its work runs, else the process default."""
    return _active.get(None) or _default


def configure(limits: Limits | Mapping[str, Any] | None = None, /, **changes: Any) -> Limits:
    """Replace this process's default ceilings: by a whole ``Limits``, or by ``changes`` to the
    present default (``configure(max_categories=50)``).
    Everything is checked before anything changes. Returns the new default."""
    global _default
    with _lock:
        base = _default if limits is None else as_limits(limits)
        _default = base.replace(**changes) if changes else base
        return _default


def as_limits(value: Limits | Mapping[str, Any] | None) -> Limits:
    """``value`` as a ``Limits``: a mapping is changes to ``current()`` (as an older payload
    carried them); None is ``current()``."""
    if isinstance(value, Limits):
        return value
    return current().replace(**dict(value or {}))


@contextlib.contextmanager
def using(limits: Limits | Mapping[str, Any] | None) -> Iterator[Limits]:
    """Run the ``with`` body under ``limits`` (a job's work: a worker serves many jobs, so the
    ceilings before it are back afterwards, even when it fails)."""
    chosen = as_limits(limits)
    token = _active.set(chosen)
    try:
        yield chosen
    finally:
        _active.reset(token)
