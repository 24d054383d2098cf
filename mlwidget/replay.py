"""Replay (``MLModel.replay``, REST ``POST ?_action=replay&version=N``; docs/monitoring.md): the
logged inputs of a time window (or the newest ``limit`` of them) run through a kept version N
and through the serving version, as a job; the answer is their agreement, each one's metric on
the labelled feedback, and the rows where they differ (all of them in a file:
``?_job=ID&_result``, ``&_format=csv`` for a table).

Everything a request can get wrong is checked before a job exists: the version (a kept one),
the window, a model that is trained and has a log. The job reads the log and the feedback
(prepare, in this process), the work predicts and compares (replay_work.py, on the executor),
and nothing of the model changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import feedback, limits, predlog_files, predlog_read, versions
from . import jobs as jobs_
from .errors import BadRequest, Conflict
from .jobs import results
from .predicting import require_pipeline
from .replay_work import Replayed, replay

DEFAULT_LIMIT = 100_000  # logged rows replayed when no window is given


def parse_window(args: Mapping[str, Any]) -> predlog_read.Filters:
    """``since``, ``until`` and ``limit`` of a replay request (as ``?_log`` reads them; without
    any, the newest DEFAULT_LIMIT rows)."""
    window = {k: v for k, v in args.items() if k in ("since", "until", "limit")}
    filters = predlog_read.parse_filters(window)
    if not window.get("limit"):
        filters = filters._replace(limit=DEFAULT_LIMIT)
    return filters


def replay_job(
    model: Any, version: Any, window: predlog_read.Filters, inline: bool = False
) -> jobs_.Job:
    """Start the replay of ``model``'s logged rows in ``window`` through ``version``."""
    if version is None or str(version).strip() == "":
        raise BadRequest(
            "Expected the version to replay: ?_action=replay&version=2 (Python: "
            "model.replay(2)). GET ?_versions lists the kept versions."
        )
    snap = model.snapshot()
    if not snap.state.get("model"):
        raise Conflict(f"Model {model.name!r} is not trained yet: it has nothing to replay.")
    candidate = versions.find(snap.state, version, model.name)["version"]
    if not predlog_files.segments(snap.folder) and not snap.options.get("log_predictions"):
        raise Conflict(
            f"Model {model.name!r} has no logged predictions to replay. Turn on its prediction "
            "log (PUT ?_model&log_predictions=true), let it serve, then replay."
        )
    ceilings = limits.current()
    job = jobs_.Job("replay", model.name, model.job_key, writer=False)
    path = None
    if model.runner.executor != "dask":  # a Dask worker may not see the store: the server writes
        path = results.result_path(model.store.staging(model.name), job.id)
        job.on_failure(lambda: results.remove_partial(path))

    def prepare() -> dict[str, Any]:
        log = predlog_read.read(model, window)
        log = log[log["shadow_of"].isna()].reset_index(drop=True)  # the served answers only
        if log.empty:
            raise Conflict(
                f"Model {model.name!r} logged no predictions in this window "
                f"({describe(window)}). Widen it, or let the model serve first."
            )
        return {
            "name": model.name,
            "kind": (snap.fitted or {}).get("kind"),
            "log": log[["id", "time", "version", "input"]],
            "labels": labels(snap.folder, set(log["id"])),
            "serving": side(model, None),
            "candidate": side(model, candidate),
            "result_path": path,
            "limits": ceilings,
        }

    def commit(result: Replayed, payload: dict[str, Any]) -> Any:
        summary = {**result.summary, "job": job.id}
        stored = result.stored
        if stored is None:  # computed where the store is not seen: written here
            stored = results.write(
                results.result_path(model.store.staging(model.name), job.id),
                "records",
                result.rows,
            )
        return results.Summarized(summary, stored)

    return model.runner.start(job, prepare, replay, commit, inline=inline)


def side(model: Any, version: int | None) -> dict[str, Any]:
    """A version as the work needs it: its number, state and pipeline (None: the serving)."""

    def take(snap: Any) -> dict[str, Any]:
        number = versions.serving(snap.state) if version is None else version
        return {
            "version": number,
            "state": dict(snap.state),
            "pipeline": require_pipeline(snap, model.name),
        }

    if version is None:
        return dict(model.repo.read(take))
    return take(model.repo.snapshot(version))


def labels(folder: Any, ids: set[str]) -> dict[str, Any]:
    """The latest labelled actual of each logged id in ``ids`` (flags alone say nothing of
    another version's answer)."""
    found = feedback.actuals(feedback.latest(feedback.read(folder)))
    wanted = {str(item) for item in ids}
    return {item: actual for item, actual in found.items() if item in wanted}


def describe(window: predlog_read.Filters) -> str:
    parts = []
    if window.since is not None:
        parts.append(f"since {window.since.isoformat()}")
    if window.until is not None:
        parts.append(f"until {window.until.isoformat()}")
    parts.append(f"the newest {window.limit:,} rows")
    return ", ".join(parts)
