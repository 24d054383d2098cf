"""``MLModel``'s long work as jobs: retrain (wait for it, or get the job), a bulk prediction
or score as a job, and this model's jobs (a mixin; tasks.py builds the jobs, jobs/ runs them).
"""

from __future__ import annotations

import contextlib
from typing import Any

from . import jobs as jobs_
from . import tasks
from .errors import MLWidgetError
from .tables import read_table


class JobsMixin:
    """Jobs of a model: each runs on the model's runner (worker processes, threads or Dask)."""

    # what MLModel gives the mixin
    job_key: tuple[str, str]

    def retrain(
        self,
        data: Any = None,
        target_col: str | None = None,
        metric: str | None = None,
        wait: bool = True,
    ) -> Any:
        """Train on ``data`` (which then becomes the training data) or on the stored data, as
        a job on this model's executor; ``metric``: a scikit-learn scorer name to report too.
        A failed retrain changes nothing. ``wait=False`` returns the :class:`~mlwidget.jobs.Job`
        at once (``.status``, ``.progress``, ``.result()``, ``.cancel()``)."""
        job = self.start_retrain(data, target_col, metric, inline=wait)
        return self._with_cv(job) if wait else job

    train = retrain

    def start_retrain(
        self, data: Any = None, target_col: Any = None, metric: str | None = None, inline=False
    ) -> jobs_.Job:
        """Start a retrain job; bad input raises here, before a job exists (see ``retrain``)."""
        table = read_table(data) if data is not None else None
        if isinstance(target_col, list | tuple):
            target_col = target_col[-1] if target_col else None
        return tasks.retrain_job(self, table, target_col, metric, inline)

    def start_job(self, action: str, data: Any, metric: str | None = None) -> jobs_.Job:
        """Start a ``score``, ``predict``, ``predict_proba`` or ``predict_table`` of ``data``
        as a job on this model's executor (REST: ``_wait=false``); ``.result()`` answers as the
        method of the same name does (``predict_table``: records)."""
        return tasks.predict_job(self, action, read_table(data), metric)

    def jobs(self) -> list[jobs_.Job]:
        """This model's recent jobs in this process, newest first."""
        return jobs_.board.of_model(self.job_key)

    def job(self, job_id: str) -> jobs_.Job:
        """This model's job ``job_id`` (NotFound if this process has none by that id)."""
        return jobs_.board.find(self.job_key, str(job_id))

    def _with_cv(self, job: jobs_.Job) -> Any:
        """A retrain ``job``'s answer once the crossval job that follows it (if one does) is
        over: its ``cv_score`` as that job computed it (Python waits; REST answers at once)."""
        answer = tasks.wait(job)
        then = tasks.follow_up(job, answer)
        if then is not None:
            with contextlib.suppress(MLWidgetError):
                answer["cv_score"] = tasks.wait(then)
        return answer
