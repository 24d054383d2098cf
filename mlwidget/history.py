"""``MLModel``'s versions: list them, roll back to one, read or download one's model file (a
mixin; see versions.py for what a version holds)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import jobs as jobs_
from . import versions
from .errors import BadRequest, NotFound


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

    def model_bytes(self, version: Any = None) -> bytes:
        """The fitted model file's content (joblib), read consistently; of ``version`` if given."""
        if version is not None:
            return self.version_bytes(version)

        def content(snap: Any) -> bytes:
            data = snap.model_bytes()
            if data is None:
                self._require_pipeline(snap)
            return data

        return self._read(content)

    def download(self, dest: str | os.PathLike[str] | None = None, version: Any = None) -> Path:
        """Copy the fitted model file (joblib; of ``version`` if given) to ``dest`` (default
        ``./<name>.joblib``)."""
        content = self.model_bytes(version)
        target = Path(dest) if dest is not None else Path.cwd() / f"{self.name}.joblib"
        if target.is_dir():
            target = target / f"{self.name}.joblib"
        target.write_bytes(content)
        return target

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

    def version_answers(self, version: Any, data: Any, outputs: tuple[str, ...]) -> dict:
        """``{"predict": [...], "predict_proba": [...]}`` (those asked in ``outputs``) of the
        rows ``data`` by a kept version, the serving one (fast path) or an older one (its file,
        loaded once and kept while it is among the last few asked for)."""
        if version is None or str(version) == str(self.version):
            out: dict[str, Any] = {}
            if "predict" in outputs:
                out["predict"] = self.predict(data)
            if "predict_proba" in outputs:
                out["predict_proba"] = self.predict_proba(data)
            return out
        from . import predicting
        from .snapshot import Snapshot

        state = self._snapshot().state
        entry = versions.find(state, version, self.name)
        kept = {
            **state,
            "model": entry["model"],
            "fitted": entry["fitted"],
            "schema": entry["schema"],
        }
        snap = Snapshot.detached(self.name, kept, self._version_pipeline(entry))
        out = {}
        if "predict" in outputs:
            out["predict"] = predicting.predict(snap, self.name, data, None)
        if "predict_proba" in outputs:
            out["predict_proba"] = predicting.predict_proba(snap, self.name, data, None)
        return out

    def _version_pipeline(self, entry: dict[str, Any]) -> Any:
        import io

        import joblib

        cache = self.__dict__.setdefault("_versions_loaded", {})
        key = entry["model"]
        if key not in cache:
            cache[key] = joblib.load(io.BytesIO(self.version_bytes(entry["version"])))
            while len(cache) > 3:
                cache.pop(next(iter(cache)))
        return cache[key]

    def export(self, fmt: str, path: Any, version: Any = None) -> Any:
        """Write the serving model (or ``version``) in another format to ``path`` (a new or
        empty folder): ``"mlflow"``, an MLflow model directory with the sklearn and
        python_function flavors, a signature and an input example (docs/interop.md)."""
        from pathlib import Path

        from . import export as export_

        if fmt not in export_.FORMATS:
            raise BadRequest(
                f"Expected an export format of {', '.join(export_.FORMATS)}, got {fmt!r}."
            )
        if version is None:
            from .predicting import require_pipeline

            pipeline, schema, fitted = self._read(
                lambda snap: (require_pipeline(snap, self.name), snap.schema, snap.fitted)
            )
        else:
            entry = versions.find(self._snapshot().state, version, self.name)
            pipeline, schema, fitted = (
                self._version_pipeline(entry),
                entry["schema"],
                entry["fitted"],
            )
        return export_.write_mlflow(pipeline, schema, fitted, Path(path))

    def export_zip(self, fmt: str, version: Any = None) -> bytes:
        """``export`` as a zip archive (REST: ``?_download&_format=mlflow``)."""
        import tempfile
        from pathlib import Path

        from . import export as export_

        with tempfile.TemporaryDirectory(prefix="mlwidget-export-") as scratch:
            folder = self.export(fmt, Path(scratch) / self.name, version)
            return export_.zip_folder(folder, f"{self.name}-{fmt}")
