"""Typing an estimator's parameters by what scikit-learn declares for them.

A parameter that arrives as text (from a URL: ``C=0.5``, ``class_weight=balanced``,
``max_depth=none``) is read in every way it could be (None, a bool, an int, a float, the text),
most specific first, and the first reading the estimator's declared ``_parameter_constraints``
accept is kept; scikit-learn then checks the value itself, so its own messages reach the user.
The same declarations tell an editor what input to offer (``describe``).
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any

from sklearn.utils._param_validation import Hidden, Interval, Options, StrOptions, make_constraint

from . import boosting

# Parameters that take another estimator: a URL can name one by its short class name.
INNER_ESTIMATOR = "estimator"
INNER_ESTIMATORS = "estimators"
NONE = {"none", "null"}
_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}


def readings(text: str) -> list[Any]:
    """Typed readings of a URL string, most specific first; the raw string is always last."""
    raw = text.strip()
    low = raw.lower()
    out: list[Any] = []
    if low in NONE:
        out.append(None)
    if low in _TRUE:
        out.append(True)
    if low in _FALSE:
        out.append(False)
    if "." not in raw and "e" not in low:
        try:
            out.append(int(raw))
        except ValueError:
            pass
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if not math.isnan(value) or low == "nan":
            out.append(value)
    out.append(text)
    return out


def declared(cls: type, name: str) -> list[Any] | None:
    """What ``cls`` declares the parameter ``name`` may be (its ``_parameter_constraints``
    entry, in scikit-learn's vocabulary: ``"boolean"``, ``None``, ``Interval(...)``,
    ``StrOptions(...)``, a type...), hidden ones unwrapped, without the entries scikit-learn
    does not know; None when nothing is declared. XGBoost's estimators declare nothing
    themselves: mlwidget's declarations for them are read (boosting.py)."""
    own = boosting.constraints(cls) or getattr(cls, "_parameter_constraints", {})
    items = own.get(name)
    if not isinstance(items, list):
        return None
    out = []
    for item in items:
        while isinstance(item, Hidden):  # as make_constraint reads it
            item = item.constraint
        try:
            make_constraint(item)
        except (ValueError, TypeError):
            continue
        out.append(item)
    return out


def satisfies(items: list[Any], value: Any) -> bool:
    """Whether one of the declared ``items`` accepts ``value``."""
    for item in items:
        try:
            if make_constraint(item).is_satisfied_by(value):
                return True
        except Exception:  # a constraint that cannot judge this value does not accept it
            continue
    return False


def parse_scalar(items: list[Any] | None, text: str) -> Any:
    """The first reading of ``text`` the declared ``items`` accept."""
    candidates = readings(text)
    if items is None:
        return candidates[0]
    for value in candidates:
        if satisfies(items, value):
            return value
    # Nothing fits: keep the most natural reading so scikit-learn's own message names it.
    return candidates[0]


def parse_param(cls: type, name: str, value: Any) -> Any:
    """Type one parameter value. Strings and lists of strings are read; other values pass."""
    items = declared(cls, name)
    if isinstance(value, str):
        if name in (INNER_ESTIMATOR,) and value.lower() not in NONE:
            return value  # a class name, resolved by estimators.make_estimator
        return parse_scalar(items, value)
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        if name == INNER_ESTIMATORS:
            return list(value)
        if len(value) == 1:
            return parse_param(cls, name, value[0])
        typed = [readings(v)[0] for v in value]
        if items is None:
            return typed
        for shape in (typed, tuple(typed)):
            if satisfies(items, shape):
                return shape
        return typed
    return value


def describe(cls: type, name: str, default: Any) -> tuple[str, list[Any] | None]:
    """What input an editor offers for the parameter: ``(type, choices)``, the type one of
    choice (with its choices; None among them when None is allowed), bool, int, float, str,
    none or other. Undeclared parameters are typed by their default."""
    items = declared(cls, name)
    if items is None:
        kinds = {bool: "bool", int: "int", float: "float", str: "str"}
        return kinds.get(type(default), "other"), None
    choices: list[Any] = []
    kind = None
    for item in items:
        if isinstance(item, StrOptions | Options):
            choices.extend(sorted(item.options, key=str))
        elif isinstance(item, str) and item == "boolean":
            kind = kind or "bool"
        elif isinstance(item, Interval):
            kind = "int" if item.type is Integral and kind != "float" else "float"
    allows_none = any(item is None for item in items)
    if choices:
        if allows_none:
            choices = [None, *choices]
        return "choice", choices
    if kind:
        return kind, None
    if allows_none and len(items) == 1:
        return "none", None
    return "other", None
