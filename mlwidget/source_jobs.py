"""A bulk prediction from a source to an output as a job (``MLModel.predict_source``, REST
``?_action=predict&source=NAME&output=NAME``).

Everything a request can get wrong is checked here, before a job exists: the names, the output
(a folder of Parquet files, not the source itself), the key columns against the source's
columns (read from its files' metadata, not its rows). The work (jobs/source_work.py) runs
where the executor runs it; its answers go to ``<output>/<model>-<job id>/part-NNNNN.parquet``.
A job that fails or is cancelled removes the folder it started.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from . import datasets, limits
from . import jobs as jobs_
from .errors import BadRequest, Conflict
from .jobs import source_work
from .snapshot import Snapshot


def predict_job(
    model: Any, source: Any, output: Any, keys: list[str] | None = None, proba: bool = False
) -> jobs_.Job:
    """Start the prediction of every row of ``source`` into ``output`` by the serving model."""
    src = datasets.resolve(source, "source")
    out = datasets.resolve(output, "output")
    check_output(src, out)
    snap = model.snapshot()
    if not snap.state.get("model"):
        raise Conflict(
            f"Model {model.name!r} is not trained yet, so it cannot predict {src.name!r}. "
            "Retrain it first."
        )
    if proba and snap.fitted.get("kind") != "classifier":
        raise BadRequest(
            f"Expected _proba=true only for a classifier; model {model.name!r} is a "
            f"{snap.fitted.get('kind') or 'model without classes'}."
        )
    columns = src.columns()
    keys = [str(k) for k in keys or [] if str(k)]
    missing = [k for k in keys if k not in columns]
    if missing:
        raise BadRequest(
            f"Expected keys among the columns of source {src.name!r} "
            f"({', '.join(columns[:20])}{'...' if len(columns) > 20 else ''}), got "
            f"{', '.join(missing)}."
        )
    ceilings = limits.current()
    job = jobs_.Job("predict", model.name, model.job_key, writer=False)
    folder = f"{model.name}-{job.id}"
    job.on_failure(lambda: remove_folder(out, folder))

    def prepare() -> dict[str, Any]:
        return {
            "model": serving_model(model),
            "source": src,
            "output": out,
            "parts": src.parts(),
            "folder": folder,
            "keys": keys,
            "proba": proba,
            "limits": ceilings,
        }

    def keep(answer: Any, payload: dict[str, Any]) -> Any:
        return answer

    return model.runner.start(job, prepare, source_work.predict_source, keep)


def serving_model(model: Any) -> dict[str, Any]:
    """What a bulk job sends of the serving version: its name, state, pipeline and digest
    (what workers that keep it know it by: model_digest)."""

    def take(snap: Snapshot) -> dict[str, Any]:
        from .predicting import require_pipeline

        return {
            "name": model.name,
            "state": dict(snap.state),
            "pipeline": require_pipeline(snap, model.name),
            "digest": model_digest(model, snap),
        }

    return dict(model.repo.read(take))


def check_output(src: datasets.Dataset, out: datasets.Dataset) -> None:
    """An output is a folder that Parquet partitions go into, not the source read."""
    if out.format != "parquet":
        raise BadRequest(
            f"Expected an output source of Parquet files, got {out.name!r} ({out.format}). "
            "Name a folder configured with format: parquet."
        )
    if datasets.GLOB.search(out.url) or out.url.rstrip("/").lower().endswith(".parquet"):
        raise BadRequest(
            f"Expected an output that is a folder, got {out.name!r}, a file or a glob. "
            "Configure a folder (or a bucket prefix) to write answers into."
        )
    if out.url.rstrip("/") == src.url.rstrip("/"):
        raise BadRequest(
            f"Expected an output other than the source read, got {out.name!r} for both."
        )


def model_digest(model: Any, snap: Snapshot) -> str:
    """What names a serving version on the workers that cache it: the store, the model and
    its model file (a new fit, or a rollback, is a new file name)."""
    text = f"{model.store.root}\0{model.name}\0{snap.state.get('model')}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def remove_folder(out: datasets.Dataset, folder: str) -> None:
    """Remove what a failed or cancelled job wrote of its answers (best effort)."""
    with contextlib.suppress(Exception):
        fs, base = out.filesystem()
        target = base.rstrip("/") + "/" + folder
        if fs.exists(target):
            fs.rm(target, recursive=True)
