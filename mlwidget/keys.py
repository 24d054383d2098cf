"""Scoped keys: let a program or a colleague call some models with a role, without the server's
token (which opens the whole Jupyter server).

A key is created by the owner (``MLModel.share``, ``jupyter mlwidget keys create``, the model
page's Share panel), shown once, and kept in the store's ``.keys.json`` as a SHA-256 of its text
(the text itself is stored nowhere). Its record: id, label, role, the models it covers (a name,
a glob or ``*``), when it expires, whether it is revoked, its rate limit and CORS origins, and
how often and when it was last used. Every process that serves the store reads the file again
when it changes, so a revoked key's next request is refused.

A key's text is ``mlw_<id>_<secret>``; send it as ``Authorization: Bearer mlw_...`` (or
``token mlw_...``). It opens only mlwidget's routes (mlhandler, V2, the model and API pages).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import filelock

from .access import Caller, Grant, check_role
from .errors import BadRequest, Forbidden, MLWidgetError, NotFound
from .store import Store, atomic_write

FILE = ".keys.json"
PREFIX = "mlw_"
FLUSH_SECONDS = 5.0  # how often a process writes the use counts it gathered
TEXT = re.compile(r"^mlw_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
DURATION = re.compile(r"^(\d{1,6})\s*([smhdw])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class TooManyRequests(MLWidgetError):
    """A key past its requests per minute (429, with the seconds to wait)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


@dataclass
class Key:
    """A key's record (never its text)."""

    id: str
    role: str
    models: str = "*"
    label: str = ""
    created: float = 0.0
    expires: float | None = None
    revoked: float | None = None
    rate: int | None = None  # requests per minute, per server process
    origins: list[str] = field(default_factory=list)  # CORS origins allowed to send it
    uses: int = 0
    last_used: float | None = None
    sha256: str = ""

    @property
    def name(self) -> str:
        return f"key {self.label!r} ({self.id})" if self.label else f"key {self.id}"

    def status(self, now: float | None = None) -> str:
        if self.revoked:
            return "revoked"
        if self.expires is not None and (now or time.time()) >= self.expires:
            return "expired"
        return "active"

    def caller(self) -> Caller:
        return Caller(self.name, "key", (Grant(self.role, self.models),), key=self.id)

    def public(self) -> dict[str, Any]:
        """What listings show: everything but the hash, times as ISO 8601."""
        out = {k: v for k, v in asdict(self).items() if k != "sha256"}
        for name in ("created", "expires", "revoked", "last_used"):
            out[name] = iso(out[name])
        out["status"] = self.status()
        return out


def iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds")


def parse_expiry(value: Any, now: float | None = None) -> float | None:
    """``30d``, ``12h``, ``90m``, ``2w``, an ISO date or seconds; None or "" or "never": never."""
    now = now or time.time()
    if value in (None, "", "never"):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return now + float(value)
    text = str(value).strip().lower()
    match = DURATION.match(text)
    if match:
        return now + int(match[1]) * UNITS[match[2]]
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise BadRequest(
            f"Expected expires as 30d, 12h, 90m, 2w, an ISO date or 'never', got {str(value)[:40]!r}."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment.timestamp() <= now:
        raise BadRequest(f"Expected an expiry in the future, got {moment.isoformat()}.")
    return moment.timestamp()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class KeyRing:
    """The keys of one store (``<store>/.keys.json``), shared by every process that uses it."""

    def __init__(self, store: Any = None) -> None:
        self.root = Store.of(store).root
        self.path = self.root / FILE
        self.lock = filelock.FileLock(str(self.root / ".keys.lock"), timeout=30)
        self._mutex = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._keys: dict[str, Key] = {}
        self._uses: dict[str, tuple[int, float]] = {}  # gathered here, not written yet
        self._flushed = time.monotonic()
        self._windows: dict[str, deque[float]] = {}
        atexit.register(self.flush)

    # ------------------------------------------------------------------ reading and writing

    def _load(self) -> dict[str, Key]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen, self._keys = None, {}
            return self._keys
        seen = (stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            raw = json.loads(self.path.read_text() or "{}")
            self._keys = {k["id"]: Key(**k) for k in raw.get("keys", [])}
            self._seen = seen
        return self._keys

    def _write(self, keys: dict[str, Key]) -> None:
        body = json.dumps({"keys": [asdict(k) for k in keys.values()]}, indent=1)
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda tmp: None if Path(tmp).write_text(body) else None)

    @contextlib.contextmanager
    def _change(self) -> Any:
        """The keys under the file lock, written back when the block ends without error."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self.lock, self._mutex:
            self._seen = None
            keys = dict(self._load())
            yield keys
            self._apply_uses(keys)
            self._write(keys)
            self._seen = None

    def _apply_uses(self, keys: dict[str, Key]) -> None:
        for key_id, (count, last) in self._uses.items():
            if key_id in keys:
                keys[key_id].uses += count
                keys[key_id].last_used = max(keys[key_id].last_used or 0.0, last)
        self._uses.clear()
        self._flushed = time.monotonic()

    # ------------------------------------------------------------------ the owner's actions

    def create(
        self,
        role: str,
        models: str = "*",
        label: str = "",
        expires: Any = None,
        rate: int | None = None,
        origins: list[str] | tuple[str, ...] = (),
    ) -> tuple[Key, str]:
        """A new key: its record and its text (shown once; only its hash is kept)."""
        check_role(role)
        Grant(role, models)  # checks the models
        if rate is not None and (not isinstance(rate, int) or isinstance(rate, bool) or rate < 1):
            raise BadRequest(
                f"Expected rate as a number of requests per minute (>= 1), got {rate!r}."
            )
        for origin in origins:
            if not re.match(r"^https?://[^/\s]+$", str(origin)):
                raise BadRequest(
                    f"Expected origins like https://app.example.com (scheme and host, no path), "
                    f"got {str(origin)[:80]!r}."
                )
        key_id = secrets.token_hex(6)
        text = f"{PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
        key = Key(
            id=key_id, role=role, models=models, label=str(label)[:100], created=time.time(),
            expires=parse_expiry(expires), rate=rate, origins=list(origins), sha256=digest(text),
        )  # fmt: skip
        with self._change() as keys:
            keys[key_id] = key
        return key, text

    def revoke(self, which: str) -> Key:
        """Revoke the key with this id (or this label, if one key has it): refused from its
        next request on, in every process."""
        with self._change() as keys:
            key = self._find(keys, which)
            key.revoked = key.revoked or time.time()
        return key

    def revoke_model(self, name: str) -> list[str]:
        """Revoke the active keys made for the model ``name`` alone (not globs, not ``*``): a
        deleted model's keys must not open a new model of the same name. Their ids."""
        with self._change() as keys:
            gone = [k for k in keys.values() if k.models == name and k.revoked is None]
            for key in gone:
                key.revoked = time.time()
        return [key.id for key in gone]

    def list(self) -> list[Key]:
        """Every key (revoked and expired ones too), oldest first, with its use counts."""
        self.flush()
        with self._mutex:
            return sorted(self._load().values(), key=lambda k: k.created)

    def get(self, which: str) -> Key:
        with self._mutex:
            return self._find(self._load(), which)

    @staticmethod
    def _find(keys: dict[str, Key], which: str) -> Key:
        if which in keys:
            return keys[which]
        labelled = [k for k in keys.values() if k.label and k.label == which]
        if len(labelled) == 1:
            return labelled[0]
        raise NotFound(
            f"No key {str(which)[:40]!r}: give a key's id or its label (`jupyter mlwidget keys "
            f"list` shows them){'; that label is on several keys' if labelled else ''}."
        )

    # ------------------------------------------------------------------ a request's key

    def check(self, text: str) -> Key:
        """The active key whose text this is (a use counted; past its rate, 429); else 403
        saying why (unknown, revoked, expired)."""
        match = TEXT.match(text.strip())
        with self._mutex:
            key = self._load().get(match[1]) if match else None
            if key is None or not hmac.compare_digest(key.sha256, digest(text.strip())):
                raise Forbidden(
                    "This key is not known to this server (a typo, or another store's)."
                )
            status = key.status()
            if status != "active":
                raise Forbidden(f"This key ({key.name}) is {status}; ask the owner for a new one.")
            self._limit(key)
            count, _ = self._uses.get(key.id, (0, 0.0))
            self._uses[key.id] = (count + 1, time.time())
            due = time.monotonic() - self._flushed >= FLUSH_SECONDS
        if due:
            self.flush()
        return key

    def _limit(self, key: Key) -> None:
        if not key.rate:
            return
        now = time.monotonic()
        window = self._windows.setdefault(key.id, deque())
        while window and now - window[0] >= 60:
            window.popleft()
        if len(window) >= key.rate:
            wait = max(1, int(60 - (now - window[0])) + 1)
            raise TooManyRequests(
                f"{key.name} allows {key.rate} requests a minute; try again in {wait} s.", wait
            )
        window.append(now)

    def flush(self) -> None:
        """Write the use counts this process gathered (every few seconds, and at exit)."""
        if not self._uses:
            return
        with contextlib.suppress(Exception):  # a read-only or vanished store: counts are lost
            with self._change():
                pass


_RINGS: dict[Path, KeyRing] = {}
_RINGS_LOCK = threading.Lock()


def ring(store: Any = None) -> KeyRing:
    """The one KeyRing of this process for ``store`` (its use counts and rate windows)."""
    root = Store.of(store).root.resolve()
    with _RINGS_LOCK:
        if root not in _RINGS:
            _RINGS[root] = KeyRing(root)
        return _RINGS[root]
