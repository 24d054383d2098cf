"""``MLModel``'s versions: list them, roll back to one, read or download one's model file (a
mixin; see versions.py for what a version holds)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import versions
from .errors import BadRequest, NotFound
from .repo import ModelRepo, Transaction
from .store import Store


class VersionsMixin:
    """Versions of a model: every successful fit, kept in the store."""

    # what MLModel gives the mixin
    name: str
    store: Store
    repo: ModelRepo
    _read: Callable[..., Any]
    snapshot: Callable[..., Any]
    _require_pipeline: Callable[..., Any]
    _write: Callable[[], contextlib.AbstractContextManager[Transaction]]
    predict: Callable[..., Any]
    predict_proba: Callable[..., Any]

    def versions(self) -> list[dict[str, Any]]:
        """The kept versions, newest first: ``version``, ``class``, ``params``, ``options``,
        ``trained_at``, ``rows``, ``data_rows``, ``data_hash``, ``score`` (on the training
        rows), ``cv_score`` (cross-validated), ``timings``, ``libraries``, ``serving``."""
        return self._read(lambda snap: versions.listing(snap.state))

    @property
    def version(self) -> int | None:
        """The number of the version that serves (None: no fitted model)."""
        return versions.serving(self.snapshot().state)

    def rollback(self, version: Any) -> dict[str, Any]:
        """Make ``version`` serve again, without refitting (its class, parameters and column
        options become the model's configuration too). One atomic commit; no new version.
        Returns ``{"name", "version", "previous", "class", "score", "cv_score"}``."""
        with self._write() as tx:
            entry = versions.find(tx.state, version, self.name)
            if not (self.store.dir(self.name) / str(entry["model"])).is_file():
                raise NotFound(f"The model file of version {entry['version']} is missing.")
            previous = versions.serving(tx.state)
            if previous != entry["version"] or tx.state.get("versions") is None:
                versions.rollback(tx.state, entry)
            else:
                tx.unchanged()
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
        return self.repo.version_bytes(version)

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

        snap = self.repo.snapshot(version)
        out = {}
        if "predict" in outputs:
            out["predict"] = predicting.predict(snap, self.name, data, None)
        if "predict_proba" in outputs:
            out["predict_proba"] = predicting.predict_proba(snap, self.name, data, None)
        return out

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
            snap = self.repo.snapshot(version)
            pipeline, schema, fitted = snap.pipeline(), snap.schema, snap.fitted
        return export_.write_mlflow(pipeline, schema, fitted, Path(path))

    def export_zip(self, fmt: str, version: Any = None) -> bytes:
        """``export`` as a zip archive (REST: ``?_download&_format=mlflow``)."""
        import tempfile
        from pathlib import Path

        from . import export as export_

        with tempfile.TemporaryDirectory(prefix="mlwidget-export-") as scratch:
            folder = self.export(fmt, Path(scratch) / self.name, version)
            return export_.zip_folder(folder, f"{self.name}-{fmt}")
