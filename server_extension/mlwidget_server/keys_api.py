"""The owner's keys over REST, per model (the model page's Share panel uses these):

- ``POST ?_action=share&role=viewer&expires=30d&label=...&rate=60&origins=https://a.example``:
  a new key on this model; its text is in this answer only.
- ``GET ?_keys``: the keys that reach this model (its own, globs that match it, ``*``), without
  their text.
- ``DELETE ?_key=ID``: revoke one (refused from its next request on).

All need the owner role (access.py); a key never makes a key with more than its own role.
"""

from __future__ import annotations

from typing import Any

from mlwidget import MLModel, access
from mlwidget.errors import BadRequest, Forbidden

from .bodies import clip, last


async def share(handler: Any, m: MLModel, args: dict[str, list[str]]) -> None:
    role = last(args, "role") or "viewer"
    access.check_role(role)
    caller = handler.caller_access()
    if access.rank(role) > access.rank(caller.role_on(m.name)):
        raise Forbidden(f"{caller.name} may not make a key with more than its own role.")
    rate_text = last(args, "rate")
    if rate_text is not None and not rate_text.isdigit():
        raise BadRequest(f"Expected rate as requests per minute (digits), got {clip(rate_text)!r}.")
    origins = [
        o.strip() for value in args.get("origins", []) for o in value.split(",") if o.strip()
    ]
    made = await handler.registry.run(
        m.share,
        role,
        last(args, "expires") or None,
        last(args, "label") or "",
        int(rate_text) if rate_text else None,
        origins,
    )
    await handler.send_json(made)


async def send_keys(handler: Any, m: MLModel) -> None:
    await handler.send_json(await handler.registry.run(m.shares))


async def revoke(handler: Any, m: MLModel, args: dict[str, list[str]]) -> None:
    which = last(args, "_key") or ""
    if which not in {key["id"] for key in await handler.registry.run(m.shares)}:
        raise BadRequest(
            f"Expected _key=<id of a key that reaches model {m.name!r}> (GET ?_keys lists them), "
            f"got {clip(which)!r}."
        )
    await handler.send_json(await handler.registry.run(m.unshare, which))
