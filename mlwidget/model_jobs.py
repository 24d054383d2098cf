"""``MLModel``'s long work as jobs: retrain (wait for it, or get the job), a bulk prediction
or score as a job, and this model's jobs (a mixin; tasks.py builds the jobs, jobs/ runs them).
"""

from __future__ import annotations

import contextlib
from typing import Any

from . import datasets, source_jobs, tasks
from . import jobs as jobs_
from . import search as search_
from .errors import BadRequest, MLWidgetError
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
        source: Any = None,
    ) -> Any:
        """Train on ``data`` (which then becomes the training data) or on the stored data, as
        a job on this model's executor; ``metric``: a scikit-learn scorer name to report too.
        ``source`` (a :class:`~mlwidget.datasets.Dataset` or a configured source's name)
        instead: the job's worker reads its rows, and the source becomes the model's data.
        A failed retrain changes nothing. ``wait=False`` returns the :class:`~mlwidget.jobs.Job`
        at once (``.status``, ``.progress``, ``.result()``, ``.cancel()``)."""
        if source is not None:
            if data is not None:
                raise BadRequest("Expected data or source to train on, got both.")
            data = datasets.resolve(source)
        job = self.start_retrain(data, target_col, metric, inline=wait)
        return self._with_cv(job) if wait else job

    train = retrain

    def start_retrain(
        self, data: Any = None, target_col: Any = None, metric: str | None = None, inline=False
    ) -> jobs_.Job:
        """Start a retrain job; bad input raises here, before a job exists (see ``retrain``)."""
        table: Any = data if isinstance(data, datasets.Dataset) else None
        if data is not None and table is None:
            table = read_table(data)
        if isinstance(target_col, list | tuple):
            target_col = target_col[-1] if target_col else None
        return tasks.retrain_job(self, table, target_col, metric, inline)

    def start_job(self, action: str, data: Any, metric: str | None = None) -> jobs_.Job:
        """Start a ``score``, ``predict``, ``predict_proba`` or ``predict_table`` of ``data``
        as a job on this model's executor (REST: ``_wait=false``); ``.result()`` answers as the
        method of the same name does (``predict_table``: records)."""
        return tasks.predict_job(self, action, read_table(data), metric)

    def predict_source(
        self,
        source: Any,
        output: Any,
        keys: list[str] | None = None,
        proba: bool = False,
        wait: bool = True,
    ) -> Any:
        """Predict every row of ``source`` into Parquet partitions in a new folder of
        ``output`` (each a :class:`~mlwidget.datasets.Dataset` or a configured source's name),
        as a job whose workers read and write the rows themselves. Each answer row has the
        input's columns (only ``keys``, if given), the prediction and, with ``proba``, one
        ``P(<class>)`` column per class. Returns ``{"output", "folder", "rows", "parts",
        "preview"}`` (``wait=False``: the :class:`~mlwidget.jobs.Job`)."""
        job = source_jobs.predict_job(self, source, output, keys, proba)
        return tasks.wait(job) if wait else job

    def search(
        self,
        grid: Any = None,
        n_iter: int | None = None,
        metric: str | None = None,
        cv: int | None = None,
        wait: bool = True,
    ) -> Any:
        """Search the estimator's parameters: ``grid`` maps each parameter to a list of values
        (``{"C": [0.1, 1, 10]}``); every combination is cross-validated (``n_iter=N``: N of
        them drawn at random) on ``cv`` folds (default: the retrain's) by ``metric`` (default:
        accuracy or r2), and the best is refit on all the rows and committed as a new version
        (its parameters in the options, its score as the version's ``cv_score``). Returns
        ``{"best", "candidates", "metric", "folds", "version", ...}``; ``wait=False`` the
        :class:`~mlwidget.jobs.Job`. Bad input raises before a job exists; a failed or
        cancelled search changes nothing (docs/jobs.md, "Hyper-parameter search")."""
        job = self.start_search(grid, n_iter, metric, cv, inline=wait)
        return tasks.wait(job) if wait else job

    def start_search(
        self,
        grid: Any = None,
        n_iter: Any = None,
        metric: Any = None,
        cv: Any = None,
        inline: bool = False,
    ) -> jobs_.Job:
        """Start a search job (see ``search``); bad input raises here, before a job exists."""
        return search_.search_job(self, grid, n_iter, metric, cv, inline)

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
