"""A model's long work as jobs: what a retrain, a score or a bulk prediction sends to its
executor, and how a finished fit is committed.

``MLModel.start_retrain`` and ``MLModel.start_job`` call these. Everything a request can get
wrong is checked here, before a job exists (so bad input is a 4xx and no job); the work itself
runs on the model's runner (jobs/), and a fit is stored once, at the end, under the model's
lock, only if the model's options and data are still the ones it was computed from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from . import jobs as jobs_
from . import limits, training
from . import state as state_
from .errors import BadRequest, Conflict, NotFound
from .jobs import results, worker
from .snapshot import Snapshot

COMMIT_WAIT = 60.0  # seconds a finished fit waits for the model's lock to store itself
# The actions predict_job runs (MLModel.start_job; a retrain is retrain_job). Not the REST
# vocabulary api.JOB_ACTIONS: predict_table is what ?_action=predict&_wait=false&_format=csv
# (or xlsx, parquet, records) starts.
PREDICT_JOB_ACTIONS = ("score", "predict", "predict_proba", "predict_table")


def basis(state: Mapping[str, Any]) -> tuple[Any, str]:
    """What a fit was computed from: if it changed meanwhile, the fit is not stored."""
    return state.get("data"), json.dumps(state.get("options"), sort_keys=True, default=str)


def retrain_job(
    model: Any, table: Any, target_col: str | None, metric: str | None, inline: bool
) -> jobs_.Job:
    """Start the retrain of ``model`` on ``table`` (None: its stored data)."""
    snap = model._snapshot()
    options = dict(snap.options)
    if target_col:
        options["target_col"] = str(target_col)
    if table is None and not snap.state.get("data"):
        raise NotFound(
            f"Model {model.name!r} has no training data. Retrain with data "
            "(REST: POST a CSV/JSON body with ?_action=retrain) or append rows first."
        )
    notes: list[str] = []
    if not options.get("class") and options.get("target_col"):  # the default for the kind
        stored = table if table is not None else model._read(Snapshot.data)
        notes = state_.default_class(options, stored)
    if not options.get("class"):
        raise BadRequest(
            f"Model {model.name!r} has no model class. Set one first: "
            "configure(class_='LogisticRegression') (REST: PUT ?_model&class=...), or give "
            "target_col and a class suited to it is chosen."
        )
    before = basis(snap.state)
    # the ceilings in force where the job starts: its work (a worker process, a Dask worker,
    # a thread) runs under them, not under the defaults of wherever it runs
    ceilings = limits.current()

    def prepare() -> dict[str, Any]:
        frame, known = table, None
        if table is None:  # the stored data, with the fingerprint stored beside it
            frame, known = model._read(lambda s: (s.data(), s.state.get("data_hash")))
        if frame is None:
            raise NotFound(f"Model {model.name!r} lost its training data meanwhile.")
        return {
            "options": options,
            "table": frame,
            "data_hash": known,
            # a worker process beside the store writes the model file itself (see worker.fit)
            "stage": str(model.store.staging(model.name))
            if model.runner.executor == "process"
            else None,
            "allowed_classes": model.allowed_classes,
            "metric": metric,
            "limits": ceilings,
        }

    def commit(fitted: training.Fitted, payload: dict[str, Any]) -> dict[str, Any]:
        with model.store.lock(model.name, max(model.lock_timeout, COMMIT_WAIT)):
            state = model._locked_state()
            if basis(state) != before:
                raise Conflict(
                    f"Model {model.name!r} was changed by another process while this "
                    "retrain ran (its options or data), so the fit was not stored. "
                    "Retrain again."
                )
            state["options"], state["notes"] = options, notes
            answer = store_fit(model, state, payload["table"], fitted, table is not None, metric)
            return {**answer, "notes": notes}

    job = jobs_.Job("retrain", model.name, model._job_key, writer=True)
    return model.runner.start(job, prepare, worker.fit, commit, inline=inline)


def predict_job(model: Any, action: str, frame: Any, metric: str | None) -> jobs_.Job:
    """Start ``action`` (score, predict, predict_proba, predict_table) of ``frame`` by the
    serving model. The worker gets the fitted pipeline and its schema, not the store; a
    prediction's answer is written to a file in the model's staging folder (jobs/results.py)."""
    if action not in PREDICT_JOB_ACTIONS:
        raise BadRequest(
            f"Expected a job action of {', '.join(PREDICT_JOB_ACTIONS)}, got {action!r}."
        )
    if frame is None or len(frame) == 0:
        raise BadRequest(f"_action={action} needs rows: got none.")
    label = "predict" if action == "predict_table" else action
    ceilings = limits.current()  # as for a retrain: the job's work runs under these
    job = jobs_.Job(label, model.name, model._job_key, writer=False)
    path = None
    if action != "score":
        path = results.result_path(model.store.staging(model.name), job.id)
        job.on_failure(lambda: results.remove_partial(path))  # a worker killed mid-write

    def prepare() -> dict[str, Any]:
        def take(snap: Snapshot) -> dict[str, Any]:
            from .predicting import require_pipeline

            return {
                "name": model.name,
                "state": dict(snap.state),
                "pipeline": require_pipeline(snap, model.name),
            }

        return {
            **model._read(take),
            "action": action,
            "frame": frame,
            "metric": metric,
            "result_path": path,
            "rows": len(frame),  # the whole answer's rows (a Dask partition has some of them)
            "limits": ceilings,
        }

    def keep(answer: Any, payload: dict[str, Any]) -> Any:
        if path is not None and isinstance(answer, list):  # gathered from a Dask cluster
            return results.write(path, worker.RESULT_KINDS[action], answer)
        return answer

    return model.runner.start(job, prepare, worker.predict, keep)


def wait(job: jobs_.Job) -> Any:
    """The job's result; Ctrl-C (a kernel interrupt) while waiting cancels the job too."""
    try:
        return job.result()
    except KeyboardInterrupt:
        job.cancel()
        raise


def store_fit(
    model: Any,
    state: dict[str, Any],
    table: pd.DataFrame,
    result: training.Fitted,
    new_data: bool,
    metric_name: str | None,
) -> dict[str, Any]:
    """Store the fit ``result`` of ``table`` in ``state`` (with the lock held): one commit."""
    if new_data:
        model._put_data(state, table)
    if result.staged:  # written by the worker process: moved in
        filename = model.store.adopt_file(model.name, "model", ".joblib", result.staged)
    else:
        filename = model._write_model(result.pipeline)
    answer = state_.record_fit(state, table, result, filename, metric_name)
    if state["options"].get("path"):
        state_.export_copy(model.store.dir(model.name) / filename, state["options"]["path"])
    model._commit(state, result.pipeline)
    return answer
