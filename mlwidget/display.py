"""How a number reads to a person: one rule for the widgets, the server's pages and their scripts.

``fmt_num`` is the rule; the pages' ``fmt`` (server_extension templates/_common_js.html) is the
same rule written in JavaScript for numbers that arrive in a page's JSON answers, and
tests/test_display_rules.py runs one table of cases (and thousands of random numbers) through
both. Downloads and the REST API keep every digit.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

DIGITS = 4  # significant digits of the numbers a form shows
FIXED = range(-5, 15)  # decimal exponents written in full; others as 1.5e-7, 1.235e+15


def fmt_num(value: Any, digits: int = DIGITS) -> str:
    """A number as a person reads it.

    - ``digits`` significant digits, trailing zeros dropped: 0.812345 -> 0.8123, 151.765 ->
      151.8, 3.0 -> 3, -0.0 -> 0;
    - the whole part is never rounded away: 1234567.8 -> 1234568 (no thousands separators:
      a year or an id reads as written, and the text reads back as the number);
    - below 1e-5 and from 1e15 on, ``digits`` significant digits in exponent form, trailing
      zeros dropped: 1.5e-7, 1.235e+20;
    - halves round away from zero, on the number's exact binary value (what JavaScript's
      ``toFixed`` and ``toExponential`` do): 0.125 -> 0.125, 1234.5 -> 1235, 2.675 -> 2.675;
    - the decimal exponent that picks the form is that of the shortest text that reads back
      as the number (Python's ``repr``, JavaScript's ``String``);
    - infinities are ∞ and -∞; None and NaN are empty; booleans are True / False; anything
      else is ``str(value)``. Integers follow the same rule as floats.
    """
    import numpy as np

    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if not isinstance(value, int | float | np.integer | np.floating):
        return str(value)
    if isinstance(value, float | np.floating) and math.isnan(value):
        return ""
    if isinstance(value, float | np.floating) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    exact = Decimal(int(value)) if isinstance(value, int | np.integer) else Decimal(float(value))
    if exact == 0:
        return "0"
    shortest = Decimal(str(value if isinstance(value, int | np.integer) else float(value)))
    magnitude = shortest.adjusted()  # floor(log10(|value|)) of the shortest text
    if magnitude not in FIXED:
        rounded = Context(prec=digits, rounding=ROUND_HALF_UP).plus(exact)
        mantissa = rounded.scaleb(-rounded.adjusted())
        text = _trim(f"{mantissa:.{digits - 1}f}")
        return f"{text}e{rounded.adjusted():+d}"
    places = max(digits - 1 - magnitude, 0)
    text = _trim(f"{exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):f}")
    return "0" if text == "-0" else text


def _trim(text: str) -> str:
    """``1.2300`` -> ``1.23``, ``3.000`` -> ``3``; text without a decimal point as it is."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def size_text(n: int) -> str:
    """A byte count as a person reads it: ``12.3 MB``."""
    return f"{n / 1024 / 1024:.1f} MB"


def model_repr(name: str, snap: Any) -> str:
    """How a model reads in a Python session, from its committed snapshot (None: unread):
    ``<MLModel 'titanic' LogisticRegression [fitted, version 2]>``. The class is the one chosen
    (``class_``) or, when the fit picked the default for the target's kind, the one it fit."""
    if snap is None:
        return f"<MLModel {name!r}>"
    fitted, options = snap.fitted, snap.options
    class_ = options.get("class") or fitted.get("model") or "(no class)"
    if not fitted.get("model"):
        return f"<MLModel {name!r} {class_} [not fitted]>"
    version = fitted.get("version")
    return f"<MLModel {name!r} {class_} [fitted{f', version {version}' if version else ''}]>"
