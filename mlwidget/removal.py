"""Deleting a model: its options, data, fitted versions and prediction log, from the store and
from this process, in one step (``MLModel.delete``; REST ``DELETE ?delete=all``; the listing's
Delete button). Refused (409 naming the job) while a job of the model runs: nothing is removed.
A cross-validation after a fit (a ``crossval`` job) is no reason to wait: its only result is a
score of the model being deleted, so the delete cancels it.
"""

from __future__ import annotations

from concurrent import futures
from typing import TYPE_CHECKING, Any

from . import jobs as jobs_
from . import keys as keys_
from . import predlog
from .jobs.job_board import busy

if TYPE_CHECKING:
    from .repo import ModelRepo
    from .store import Store

# What ``delete()`` answers as deleted (``DELETE ?delete=all``): the whole model
ALL = "all"


# Jobs whose only result is a score of the model: a delete cancels them rather than wait
SCORES_ONLY = ("crossval",)
CANCEL_WAIT = 30.0  # seconds a delete waits for them to stop (a thread stops between folds)


def running_job(key: tuple[str, str]) -> Any:
    """A job of the model ``key`` that has not finished (a writer first), or None."""
    return next((job for job in jobs_.board.of_model(key) if not job.done), None)


def cancel_scores(key: tuple[str, str]) -> None:
    """Cancel the model's unfinished ``crossval`` jobs and wait for them to end (up to
    ``CANCEL_WAIT`` seconds), if they are all of its unfinished jobs; else cancel nothing (the
    other job is the 409)."""
    unfinished = [job for job in jobs_.board.of_model(key) if not job.done]
    if not unfinished or any(job.action not in SCORES_ONLY for job in unfinished):
        return
    for job in unfinished:
        job.cancel()
    futures.wait([job.future for job in unfinished], timeout=CANCEL_WAIT)


class RemovalMixin:
    """``delete()`` (and its old name ``destroy()``) for MLModel."""

    name: str
    store: Store
    repo: ModelRepo
    job_key: tuple[str, str]

    def delete(self) -> dict[str, Any]:
        """Remove the model from the store entirely: options, training data, every fitted
        version and the prediction log (the model's folder). Afterwards the store does not list
        it and opening it is a NotFound. A Conflict (409, naming the job) while one of its jobs
        runs, and nothing is removed; cancel the job or wait for it first. A cross-validation
        after a fit (a ``crossval`` job) is cancelled instead. Answers as the
        REST ``DELETE ?delete=all``: ``{"name", "deleted": ["all"], "absent": []}`` (or
        ``"absent": ["all"]`` when the store had no such model), plus ``"revoked_keys"``: the
        ids of the keys made for this model alone, revoked with it."""
        jobs_.board.check_free(self.job_key)  # a running writer: 409 naming it
        cancel_scores(self.job_key)
        job = running_job(self.job_key)
        if job is not None:
            raise busy(job)
        existed = self.store.exists(self.name)
        predlog.discard(self.store.dir(self.name))  # records not yet written go with it
        self.repo.remove()
        revoked = keys_.ring(self.store).revoke_model(self.name)  # a new model of this name
        done = [ALL] if existed else []  # starts with no keys
        answer = {"name": self.name, "deleted": done, "absent": [] if existed else [ALL]}
        return {**answer, "revoked_keys": revoked} if revoked else answer

    def destroy(self) -> None:
        """The old name of :meth:`delete` (kept for callers): remove the model entirely."""
        self.delete()
