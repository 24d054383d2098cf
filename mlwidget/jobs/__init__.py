"""Jobs: long work (retrain, score, predictions) outside the caller, bounded, observable and
cancellable. ``Job`` is one job's state; ``Runner`` runs jobs on an executor (``process``,
``thread`` or ``dask``); ``board`` knows this process's jobs. See docs/jobs.md."""

from .dask_cluster import ENV_WORKER_WAIT
from .job import (
    FINISHED,
    STATUSES,
    Job,
    JobCancelled,
    JobTimeout,
    TooManyJobs,
    WorkerDied,
    board,
)
from .runner import (
    ENV_CLUSTER,
    ENV_EXECUTOR,
    ENV_SCHEDULER,
    EXECUTORS,
    Runner,
    resolve,
    shared_runner,
)

__all__ = [
    "ENV_CLUSTER",
    "ENV_EXECUTOR",
    "ENV_SCHEDULER",
    "ENV_WORKER_WAIT",
    "EXECUTORS",
    "FINISHED",
    "STATUSES",
    "Job",
    "JobCancelled",
    "JobTimeout",
    "Runner",
    "TooManyJobs",
    "WorkerDied",
    "board",
    "resolve",
    "shared_runner",
]
