"""Deleting a model: its options, data, fitted versions and prediction log, from the store and
from this process, in one step (``MLModel.delete``; REST ``DELETE ?delete=all``; the listing's
Delete button). Refused (409 naming the job) while a job of the model runs: nothing is removed.
"""

from __future__ import annotations

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


def running_job(key: tuple[str, str]) -> Any:
    """A job of the model ``key`` that has not finished (a writer first), or None."""
    return next((job for job in jobs_.board.of_model(key) if not job.done), None)


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
        runs, and nothing is removed; cancel the job or wait for it first. Answers as the
        REST ``DELETE ?delete=all``: ``{"name", "deleted": ["all"], "absent": []}`` (or
        ``"absent": ["all"]`` when the store had no such model), plus ``"revoked_keys"``: the
        ids of the keys made for this model alone, revoked with it."""
        jobs_.board.check_free(self.job_key)  # a running writer: 409 naming it
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
