"""One error family for every face of mlwidget.

Each error knows the HTTP status the REST API answers with, and its message says what was
expected, what arrived and what to do. The REST handlers render ``str(error)`` as
``{"error": ...}``; widgets show the same text; Python callers catch :class:`MLWidgetError`.
"""

from __future__ import annotations


class MLWidgetError(Exception):
    """Base of every error mlwidget raises on purpose. ``status`` is the HTTP status."""

    status: int = 500
    reason: str | None = None  # the message without its advice (the server's start-up errors)

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


def reason(exc: BaseException, limit: int = 600) -> str:
    """A library exception's message, fit for a user: what comes before any traceback it
    quotes (scikit-learn's "All the fits failed" messages include whole tracebacks, with server
    paths), on at most a few lines, cut at ``limit`` characters."""
    text = str(exc) or type(exc).__name__
    for marker in ("Traceback (most recent call last)", 'File "', "\n----"):
        text = text.split(marker)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()][:4]
    text = " ".join(lines).rstrip(" .:-")
    return text if len(text) <= limit else text[:limit] + "..."


class BadRequest(MLWidgetError, ValueError):
    """The input is malformed or does not fit the model (400)."""

    status = 400


class Forbidden(MLWidgetError, PermissionError):
    """The caller may not do this (403)."""

    status = 403


class NotFound(MLWidgetError, LookupError):
    """No such model, or the model has no fitted estimator or no data (404)."""

    status = 404


class Conflict(MLWidgetError):
    """Another operation holds the model; try again (409)."""

    status = 409


class Busy(Conflict):
    """The model's lock is held by another change and the caller chose not to wait (409).
    Raised before anything is changed, so the same call can simply be tried again."""


class Gone(MLWidgetError):
    """What was asked for existed and was removed (a job's result past its retention) (410)."""

    status = 410


class PayloadTooLarge(MLWidgetError):
    """The request body is over the configured limit (413)."""

    status = 413


class UnsupportedFormat(MLWidgetError):
    """The body is in no format mlwidget reads (415)."""

    status = 415


__all__ = [
    "MLWidgetError",
    "BadRequest",
    "Forbidden",
    "NotFound",
    "Conflict",
    "Busy",
    "Gone",
    "PayloadTooLarge",
    "UnsupportedFormat",
]
