"""``POST ?_action=importance``: the model's global importance (``MLModel.importance``: how
much its score on held-out stored rows drops when each input column is shuffled) as a job.

Query keys: ``_metric`` (or ``metric``: a scikit-learn scorer name; default the model's),
``repeats`` (shuffles of each column, 1 to 20) and ``rows`` (held-out rows shuffled, at most
20,000). Everything is checked before a job exists. The answer is the job's, as a retrain's:
its result when it is done, or 202 with ``_wait=false``. Nothing is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlwidget import importance

from .bodies import last, wants_wait

if TYPE_CHECKING:
    from mlwidget import MLModel


async def answer(handler: Any, m: MLModel, args: dict[str, list[str]]) -> None:
    """Start the importance job ``handler``'s request asks for, and answer as a job does."""
    metric = last(args, "_metric") or last(args, "metric") or None
    repeats = last(args, "repeats") or importance.REPEATS
    rows = last(args, "rows") or importance.ROWS
    job = await handler.registry.run(m.importance, metric, repeats, rows, False)
    job.caller = handler.caller()
    await handler.answer_job(m, job, wants_wait(args))
