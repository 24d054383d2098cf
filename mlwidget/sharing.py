"""``MLModel.share`` and its keys: the owner lets a program or a colleague use this model with
a role, through a scoped key (see keys.py for what a key is and where it is kept)."""

from __future__ import annotations

from typing import Any

from . import keys as keys_


class SharingMixin:
    """Scoped keys for one model (a mixin of ``MLModel``)."""

    # what MLModel gives the mixin
    name: str
    store: Any

    def share(
        self,
        role: str = "viewer",
        expires: Any = None,
        label: str = "",
        rate: int | None = None,
        origins: list[str] | tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """A new key with ``role`` (viewer, trainer or owner) on this model: ``{"key": text,
        "id", "role", "models", "label", "expires", ...}``. The text is shown this once (only
        its hash is stored); send it as ``Authorization: Bearer <key>``. ``expires``: ``30d``,
        ``12h``, an ISO date, or None (never); ``rate``: requests a minute; ``origins``: web
        pages (``https://app.example.com``) allowed to send it cross-origin (CORS)."""
        key, text = keys_.ring(self.store).create(
            role, self.name, label=label, expires=expires, rate=rate, origins=origins
        )
        return {"key": text, **key.public()}

    def shares(self) -> list[dict[str, Any]]:
        """The keys that reach this model (its own, globs that match it, ``*``), without their
        text."""
        return [
            key.public() for key in keys_.ring(self.store).list() if key.caller().sees(self.name)
        ]

    def unshare(self, key: str) -> dict[str, Any]:
        """Revoke a key (by id or label): refused from its next request on."""
        return keys_.ring(self.store).revoke(key).public()
