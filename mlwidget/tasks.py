"""A model's long work as jobs: what a retrain, a score or a bulk prediction sends to its
executor, and how a finished fit is committed.

``MLModel.start_retrain`` and ``MLModel.start_job`` call these. Everything a request can get
wrong is checked here, before a job exists (so bad input is a 4xx and no job); the work itself
runs on the model's runner (jobs/), and a fit is stored once, at the end, under the model's
lock, only if the model's options and data are still the ones it was computed from.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pandas as pd

from . import crossval, datasets, limits, source_jobs, training, versions
from . import jobs as jobs_
from . import state as state_
from .errors import BadRequest, MLWidgetError, NotFound
from .jobs import result_parts, results, worker
from .repo import Transaction, basis
from .snapshot import Snapshot

COMMIT_WAIT = 60.0  # seconds a finished fit waits for the model's lock to store itself
# The actions predict_job runs (MLModel.start_job; a retrain is retrain_job). Not the REST
# vocabulary api.JOB_ACTIONS: predict_table is what ?_action=predict&_wait=false&_format=csv
# (or xlsx, parquet, records) starts.
PREDICT_JOB_ACTIONS = ("score", "predict", "predict_proba", "predict_table")


def retrain_job(
    model: Any,
    table: Any,
    target_col: str | None,
    metric: str | None,
    inline: bool,
    keep_notes: bool = False,
) -> jobs_.Job:
    """Start the retrain of ``model`` on ``table`` (None: its stored data). ``keep_notes``:
    the model's creation notes stay (its first fit, from ``MLModel(name, data=...)``)."""
    snap = model.snapshot()
    options = dict(snap.options)
    if target_col:
        options["target_col"] = str(target_col)
    source = table if isinstance(table, datasets.Dataset) else None
    if table is None and snap.state.get("data_source"):  # trained from a source: read it again
        source = datasets.from_reference(snap.state["data_source"])
    if source is not None and not options.get("class"):
        raise BadRequest(
            f"Model {model.name!r} trains from source {source.name!r}, whose rows only the "
            "workers read, so no model class can be chosen from them. Set one first: "
            "configure(class_='XGBClassifier') (REST: PUT ?_model&class=...)."
        )
    if table is None and source is None and not snap.state.get("data"):
        raise NotFound(
            f"Model {model.name!r} has no training data. Retrain with data "
            "(REST: POST a CSV/JSON body with ?_action=retrain) or append rows first."
        )
    notes: list[str] | None = None if keep_notes else []
    if not options.get("class") and options.get("target_col"):  # the default for the kind
        stored = table if table is not None else model.repo.read(Snapshot.data)
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
        if source is not None:  # the worker reads it
            frame = source
        elif table is None:  # the stored data, with the fingerprint stored beside it
            frame, known = model.repo.read(lambda s: (s.data(), s.state.get("data_hash")))
        if frame is None:
            raise NotFound(f"Model {model.name!r} lost its training data meanwhile.")
        return {
            "options": options,
            "table": frame,
            "data_hash": known,
            **staging(model),
            "allowed_classes": model.allowed_classes,
            "metric": metric,
            "limits": ceilings,
        }

    def commit(fitted: training.Fitted, payload: dict[str, Any]) -> dict[str, Any]:
        folds = fitted.cv_folds
        follow = jobs_.Job("crossval", model.name, model.job_key, writer=False) if folds else None
        with model.repo.transaction(max(model.lock_timeout, COMMIT_WAIT), expect=before) as tx:
            tx.state["options"] = options
            if notes is not None:
                tx.state["notes"] = notes
            new_data = table is not None or source is not None
            answer = store_fit(tx, payload["table"], fitted, new_data, metric)
            if follow is not None and folds:
                tx.state["fitted"]["cv_score"] = crossval.pending(folds, follow.id)
                versions.update(
                    tx.state, answer["version"], cv_score=tx.state["fitted"]["cv_score"]
                )
                answer["cv_score"] = tx.state["fitted"]["cv_score"]
        if follow is not None and folds:
            try:
                # the rows' fingerprint finds the fit's frame; a source is read again
                stored = not isinstance(payload["table"], datasets.Dataset)
                fingerprint = fitted.fitted.get("data_hash") if stored else None
                crossval_job(
                    model, follow, answer["version"], options, payload["table"], folds, fingerprint
                )
            except MLWidgetError as exc:  # the fit is stored and serves: only its cv is lost
                record_cv(
                    model, answer["version"], None, None, [f"No cross-validated score: {exc}"]
                )
                answer["cv_score"] = None
        return {**answer, "notes": tx.state.get("notes") or []}

    job = jobs_.Job("retrain", model.name, model.job_key, writer=True)
    return model.runner.start(job, prepare, worker.fit, commit, inline=inline)


def staging(model: Any) -> dict[str, Any]:
    """Where the worker of a fit writes the model file itself (see ``worker.fit``) rather than
    send the pipeline back (a 100-tree forest on 100,000 rows: over 300 MB): a worker process
    beside the store always; a Dask worker when it sees the same store (shared storage: it
    finds the store's id at ``stage``); threads never."""
    executor = model.runner.executor
    if executor not in ("process", "dask"):
        return {"stage": None, "store_id": None}
    stage = str(model.store.staging(model.name))
    return {"stage": stage, "store_id": model.store.identity() if executor == "dask" else None}


def crossval_job(
    model: Any,
    job: jobs_.Job,
    version: int,
    options: Any,
    table: Any,
    folds: int,
    fingerprint: str | None = None,
) -> jobs_.Job:
    """Cross-validate version ``version`` of ``model`` (just committed by a retrain) as a job
    of its own: its folds refit the same options on ``table`` (``fingerprint``: its
    ``data_hash``, which finds the frame the fit prepared where the same worker kept it); the
    ``cv_score`` (and the out-of-fold summary the plots use) then fills that version's record.
    A failure records no score, with a warning; the version serves all along."""
    ceilings = limits.current()

    def prepare() -> dict[str, Any]:
        return {
            "options": options,
            "table": table,
            "folds": folds,
            "data_hash": fingerprint,
            "allowed_classes": model.allowed_classes,
            "limits": ceilings,
        }

    def commit(result: Any, payload: dict[str, Any]) -> Any:
        cv_score, out_of_fold, warns = result
        record_cv(model, version, cv_score, out_of_fold, warns)
        return cv_score

    def failed() -> None:
        with contextlib.suppress(MLWidgetError):
            record_cv(model, version, None, None, ["No cross-validated score: the job failed."])

    job.on_failure(failed)
    return model.runner.start(job, prepare, worker.crossval, commit, follow_up=True)


def record_cv(model: Any, version: int, cv_score: Any, out_of_fold: Any, warns: list[str]) -> None:
    """Fill version ``version``'s ``cv_score`` (and, if it serves, the model's): one commit;
    nothing if the version was dropped meanwhile."""
    with model.repo.transaction(max(model.lock_timeout, COMMIT_WAIT)) as tx:
        if not versions.update(tx.state, version, cv_score=cv_score, out_of_fold=out_of_fold):
            tx.unchanged()
            return
        if versions.serving(tx.state) == version:
            tx.state["fitted"] = {**tx.state["fitted"], "cv_score": cv_score}
            tx.state["fitted"]["out_of_fold"] = out_of_fold
            timings = dict(tx.state["fitted"].get("timings") or {})
            timings["cv"] = cv_score["seconds"] if cv_score else None
            tx.state["fitted"]["timings"] = timings
            known = tx.state.setdefault("warnings", [])
            known.extend(text for text in warns if text not in known)


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
    job = jobs_.Job(label, model.name, model.job_key, writer=False)
    path = None
    if action != "score":
        path = results.result_path(model.store.staging(model.name), job.id)
        job.on_failure(lambda: remove_answer(path))  # a worker killed mid-write, a cancel
    # Dask workers that find this id at the result's folder see the store: they write their
    # partitions' answers there (jobs/result_parts.py) rather than send them back
    store_id = model.store.identity() if model.runner.executor == "dask" else None

    def prepare() -> dict[str, Any]:
        return {
            **source_jobs.serving_model(model),
            "action": action,
            "frame": frame,
            "metric": metric,
            "result_path": path,
            "store_id": store_id,
            "rows": len(frame),  # the whole answer's rows (a Dask partition has some of them)
            "limits": ceilings,
        }

    def keep(answer: Any, payload: dict[str, Any]) -> Any:
        if path is not None and isinstance(answer, list):  # answers computed in memory
            return results.write(path, worker.RESULT_KINDS[action], answer)
        return answer  # a StoredResult: written where the work ran (or joined from partitions)

    return model.runner.start(job, prepare, worker.predict, keep)


def remove_answer(path: str) -> None:
    """What a prediction job that did not finish wrote: its result file, half written, and
    the part files of its Dask partitions."""
    results.remove_partial(path)
    result_parts.remove_parts(path)


def follow_up(job: jobs_.Job, answer: Any) -> jobs_.Job | None:
    """The crossval job a finished retrain ``job`` started (its answer's pending ``cv_score``
    names it), or None."""
    pending: Any = answer.get("cv_score") if isinstance(answer, dict) else None
    if not crossval.is_pending(pending):
        return None
    return jobs_.board.find(job.key, str(pending["job"]))


def wait(job: jobs_.Job) -> Any:
    """The job's result; Ctrl-C (a kernel interrupt) while waiting cancels the job too."""
    try:
        return job.result()
    except KeyboardInterrupt:
        job.cancel()
        raise


def store_fit(
    tx: Transaction,
    table: pd.DataFrame | datasets.Dataset,
    result: training.Fitted,
    new_data: bool,
    metric_name: str | None,
) -> dict[str, Any]:
    """Record the fit ``result`` of ``table`` in the transaction ``tx`` (committed on its exit);
    returns the retrain answer."""
    if isinstance(table, datasets.Dataset):  # the source is the data: its rows stay there
        tx.state.update(data=None, data_hash=None, data_source=datasets.reference(table))
    elif new_data:  # the fit hashed these rows already (its record's data_hash)
        tx.put_data(table, result.fitted.get("data_hash"))
        tx.state.pop("data_source", None)
    if result.staged:  # written by the worker process: moved in
        filename = tx.adopt_model(result.staged)
    else:
        filename = tx.put_model(result.pipeline)
    answer = state_.record_fit(tx.state, table, result, filename, metric_name)
    if tx.state["options"].get("path"):
        state_.export_copy(tx.repo.store.dir(tx.repo.name) / filename, tx.state["options"]["path"])
    return answer
