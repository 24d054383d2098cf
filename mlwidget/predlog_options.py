"""The prediction log's options (docs/monitoring.md), their defaults and their typing: read
by options.py (every option name) and predlog.py."""

from __future__ import annotations

import contextlib
import math
from typing import Any

from .errors import BadRequest

# The options (docs/monitoring.md) and their defaults.
LOG_OPTIONS: dict[str, Any] = {
    "log_predictions": False,
    "log_python": False,
    "log_sample": 1.0,
    "log_max_mb": 100.0,
    "log_days": 30.0,
}
# (least, most) of each number option; log_sample may not be 0 (log_predictions=false is)
_RANGES = {"log_sample": (0.0, 1.0), "log_max_mb": (0.0, 1e6), "log_days": (0.0, 36500.0)}


def clean_option(name: str, value: Any) -> Any:
    """A log option's value, typed (``"true"``, ``"0.5"`` from a query or YAML), or a
    BadRequest naming it."""
    if isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    if value is None or value == "":
        return LOG_OPTIONS[name]
    if name in ("log_predictions", "log_python"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return text in ("true", "1", "yes", "on")
        raise BadRequest(f"Expected option {name!r} to be true or false, got {str(value)[:40]!r}.")
    least, most = _RANGES[name]
    number = None
    if not isinstance(value, bool):
        with contextlib.suppress(TypeError, ValueError):
            number = float(value)
    if number is None or not math.isfinite(number) or not least < number <= most:
        raise BadRequest(
            f"Expected option {name!r} to be a number above {least:g} and at most {most:g}, got "
            f"{str(value)[:40]!r}. E.g. log_sample=0.1 (a tenth of the answers), log_max_mb=100, "
            "log_days=30."
        )
    return number
