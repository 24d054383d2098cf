"""Who may do what to which model: roles, grants and callers (the contract's section 10).

| role | may |
|---|---|
| ``viewer`` | predictions (GET, POST, V2), ``predict_proba``, ``explain``, feedback on the predictions answered to it, ``?_model``, ``?_params``, ``?_openapi``, the model and API pages |
| ``trainer`` | viewer + retrain, train, search, importance, append, score, PUT (``shadow`` too), rollback, replay, jobs and their cancel, ``?_versions``, ``?_log``, ``?_monitor``, ``?_feedback`` (and their DELETE) |
| ``owner`` | trainer + DELETE, ``?_download`` of the model or ``?_cache`` of its data, managing keys |

A grant gives a role on a model, a glob of model names (``sales-*``) or all models (``*``). A
caller holds grants: a scoped key's, a JupyterHub user's custom scopes'; the server's own user
(its Jupyter token or login; on JupyterHub the user the server runs for) is owner of all.
"""

from __future__ import annotations

import contextvars
import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import BadRequest

ROLES = ("viewer", "trainer", "owner")
# POST ?_action=... a viewer may send (the rest need a trainer); a viewer's feedback names the
# predictions answered to it (mlwidget.feedback.record)
VIEWER_ACTIONS = ("predict", "predict_proba", "explain", "feedback")
# GET ?<key> that need more than a viewer
TRAINER_KEYS = ("_job", "_jobs", "_result", "_versions", "_log", "_monitor", "_feedback")
OWNER_KEYS = ("_download", "_cache", "_keys")
OWNER_ACTIONS = ("share",)  # POST ?_action=share: a new key


def check_role(role: Any) -> str:
    """``role`` if it is one of ROLES, else a BadRequest naming them."""
    if role not in ROLES:
        raise BadRequest(f"Expected a role of {', '.join(ROLES)}, got {str(role)[:40]!r}.")
    return str(role)


def rank(role: str | None) -> int:
    """0 for no role, then 1, 2, 3 for viewer, trainer, owner."""
    return ROLES.index(role) + 1 if role in ROLES else 0


def needed(method: str, keys: Iterable[str], action: str | None = None) -> str:
    """The role a request to one model needs: its HTTP ``method``, its query ``keys`` and, for
    a POST, its ``_action`` (default predict)."""
    keys = set(keys)
    method = method.upper()
    if method in ("GET", "HEAD"):
        if keys & set(OWNER_KEYS):
            return "owner"
        return "trainer" if keys & set(TRAINER_KEYS) else "viewer"
    if method == "POST":
        if action in OWNER_ACTIONS:
            return "owner"
        return "viewer" if (action or "predict") in VIEWER_ACTIONS else "trainer"
    if method == "DELETE":
        # a job's cancel, the log, the feedback
        return "trainer" if keys & {"_job", "_log", "_feedback"} else "owner"
    return "trainer"  # PUT


@dataclass(frozen=True)
class Grant:
    """``role`` on the models whose names match ``models`` (a name, a glob, or ``*``)."""

    role: str
    models: str = "*"

    def __post_init__(self) -> None:
        check_role(self.role)
        if not isinstance(self.models, str) or not self.models.strip():
            raise BadRequest(f"Expected a model name or glob, got {self.models!r}.")

    def covers(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.models)

    def describe(self) -> str:
        return f"{self.role} on {'all models' if self.models == '*' else repr(self.models)}"


@dataclass(frozen=True)
class Caller:
    """Who sends a request: ``name`` (what a version's history and the audit record), how
    they came (``owner``: the server's own user; ``key``: a scoped key; ``hub``: a JupyterHub
    user with scopes) and their grants."""

    name: str
    kind: str = "owner"
    grants: tuple[Grant, ...] = field(default_factory=tuple)
    key: str | None = None  # the key's id, for a key

    @property
    def is_owner(self) -> bool:
        """The server's own user: owner of every model and of the server."""
        return self.kind == "owner"

    def role_on(self, model: str) -> str | None:
        """The highest role this caller holds on ``model`` (None: none)."""
        if self.is_owner:
            return "owner"
        best = max((g.role for g in self.grants if g.covers(model)), key=rank, default=None)
        return best

    def may(self, role: str, model: str) -> bool:
        return rank(self.role_on(model)) >= rank(role)

    def sees(self, model: str) -> bool:
        """Whether ``model`` is listed for this caller (any role on it)."""
        return self.role_on(model) is not None

    def refusal(self, role: str, model: str, what: str) -> str:
        """Why this caller may not do ``what`` (which needs ``role``) on ``model``."""
        held = "; ".join(g.describe() for g in self.grants) or "no role on any model"
        return (
            f"{what} on model {model!r} needs the {role} role; {self.name} holds {held}. "
            "Ask the model's owner for a key (or a JupyterHub scope) with that role."
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "grants": [g.describe() for g in self.grants]}


OWNER = Caller("owner")


def grants_of(spec: Iterable[Mapping[str, Any]]) -> tuple[Grant, ...]:
    """Grants from ``[{"role", "models"}, ...]``."""
    return tuple(Grant(str(g.get("role")), str(g.get("models") or "*")) for g in spec)


# Who is making the change being committed (the audit): set by the REST handlers for their
# request; worker threads and jobs started from there carry it (registry.run, Runner.start).
ACTING: contextvars.ContextVar[str | None] = contextvars.ContextVar("mlwidget_acting", default=None)


def acting() -> str:
    """Who makes the change now: the caller of the request being served, else the owner
    (a kernel's Python)."""
    return ACTING.get() or "owner"
