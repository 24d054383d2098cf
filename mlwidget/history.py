"""``MLModel``'s versions: list them, roll back to one, read one's model file (a mixin; see
versions.py for what a version holds)."""

from __future__ import annotations

from typing import Any

from . import jobs as jobs_
from . import versions
from .errors import NotFound


class VersionsMixin:
    """Versions of a model: every successful fit, kept in the store."""

    def versions(self) -> list[dict[str, Any]]:
        """The kept versions, newest first: ``version``, ``class``, ``params``, ``options``,
        ``trained_at``, ``rows``, ``data_rows``, ``data_hash``, ``score`` (on the training
        rows), ``cv_score`` (cross-validated), ``timings``, ``libraries``, ``serving``."""
        return self._read(lambda snap: versions.listing(snap.state))

    @property
    def version(self) -> int | None:
        """The number of the version that serves (None: no fitted model)."""
        return versions.serving(self._snapshot().state)

    def rollback(self, version: Any) -> dict[str, Any]:
        """Make ``version`` serve again, without refitting (its class, parameters and column
        options become the model's configuration too). One atomic commit; no new version.
        Returns ``{"name", "version", "previous", "class", "score", "cv_score"}``."""
        jobs_.board.check_free(self._job_key)  # 409 while a retrain job runs
        with self.store.lock(self.name, self.lock_timeout):
            state = self._locked_state()
            entry = versions.find(state, version, self.name)
            if not (self.store.dir(self.name) / str(entry["model"])).is_file():
                raise NotFound(f"The model file of version {entry['version']} is missing.")
            previous = versions.serving(state)
            if previous != entry["version"] or state.get("versions") is None:
                versions.rollback(state, entry)
                self._commit(state)
        public = versions.public(entry, entry["version"])
        return {
            "name": self.name,
            "version": entry["version"],
            "previous": previous,
            "class": public["class"],
            "score": public["score"],
            "cv_score": public["cv_score"],
        }

    def version_bytes(self, version: Any) -> bytes:
        """The model file (joblib) of a kept version."""

        def content(snap: Any) -> bytes:
            entry = versions.find(snap.state, version, self.name)
            try:
                return (snap.folder / str(entry["model"])).read_bytes()
            except FileNotFoundError:
                raise NotFound(
                    f"Version {entry['version']} of {self.name!r} was dropped meanwhile."
                ) from None

        return self._read(content)
