"""After a model serves: feedback on its logged predictions, the labelled rows it gives the
training data, the monitor and the replay of a candidate version (``MLModel.feedback``,
``append_feedback``, ``monitor``, ``replay``; the REST faces are ``?_action=feedback``,
``?_action=append&from=feedback``, ``?_monitor`` and ``?_action=replay``). See feedback.py,
monitoring.py and replay.py, and docs/monitoring.md."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from . import changes, feedback, feedback_rows, monitoring, replay, tasks
from . import jobs as jobs_
from .errors import BadRequest
from .repo import ModelRepo, Transaction
from .snapshot import Snapshot


class Mixin:
    """Feedback and monitoring of one model (a mixin of ``MLModel``)."""

    # what MLModel gives the mixin
    name: str
    repo: ModelRepo
    snapshot: Callable[..., Any]
    _read: Callable[..., Any]
    _write: Callable[[], contextlib.AbstractContextManager[Transaction]]

    def feedback(self, items: Any = None, **item: Any) -> dict[str, Any]:
        """Feedback on logged predictions, by id: ``feedback(id="3f9a1c2b7d4e-0", actual=1)``,
        ``feedback(id=..., flag="wrong", note="...")``, or a list of such dicts. Every id must
        be in the log (a BadRequest listing the unknown ones; nothing is stored). Answers
        ``{"name", "stored", "labelled", "flagged", "ids"}``."""
        if items is not None and item:
            raise BadRequest("Expected feedback as a list of items or as keywords, not both.")
        parsed = feedback.parse_items(items if items is not None else item)
        return feedback.record(self, parsed)

    def append_feedback(self) -> dict[str, Any]:
        """Add the labelled feedback (each id's logged input row, its actual as the target) to
        the training data, checked as any append; only the labels given since the last call,
        each id once. Answers ``{"rows", "appended", "ids"}`` (``appended`` 0 and no change
        when there is nothing new)."""
        folder = self.snapshot().folder
        with self._write() as tx:
            mark = int(tx.state.get("feedback_appended") or 0)
            new = feedback.read(folder, after=mark)
            labelled = feedback.latest(new)
            labelled = labelled[labelled["actual"].notna()] if len(labelled) else labelled
            stored = self._read(Snapshot.data)
            if labelled.empty:
                tx.unchanged()
                rows = len(stored) if stored is not None else int(tx.state.get("data_rows") or 0)
                return {"rows": rows, "appended": 0, "ids": []}
            answer = changes.append(
                tx, stored, feedback_rows.training_rows(labelled, stored, tx.state)
            )
            tx.state["feedback_appended"] = int(new["seq"].max())
        return {**answer, "ids": [str(i) for i in labelled["id"]]}

    def monitor(
        self, since: Any = None, until: Any = None, version: Any = None, limit: Any = None
    ) -> dict[str, Any]:
        """What ``GET ?_monitor`` answers: traffic and latency per version over time, the
        predictions against the training target, the live metric on labelled feedback per
        version, and drift per feature against the training data (docs/monitoring.md).
        ``since``/``until``: times (ISO 8601 text or a Timestamp); ``version``: one version's
        answers only; ``limit``: the newest records read (default 1,000,000)."""
        given = {"since": since, "until": until, "version": version, "limit": limit}
        args = {k: [str(v)] for k, v in given.items() if v is not None}
        return monitoring.report(self, monitoring.parse(args))

    def replay(
        self,
        version: Any,
        since: Any = None,
        until: Any = None,
        limit: Any = None,
        wait: bool = True,
    ) -> Any:
        """Run the logged inputs through kept version ``version`` and through the serving
        version, and compare them, as a job: ``since``/``until`` (ISO 8601 text or Timestamps)
        bound the window, ``limit`` takes its newest rows (default 100,000). Answers
        ``{"version", "serving_version", "rows", "agree", "differ", "agreement", "metric",
        "labelled", "serving", "candidate", "differences"}``: each version's metric on the
        labelled feedback, and here every differing row (its id, time, the actual if known,
        both answers and the input). Nothing of the model changes. ``wait=False`` returns the
        :class:`~mlwidget.jobs.Job` (its ``.result()`` lists the first 20 differing rows, its
        ``stored_result().load()`` all of them)."""
        job = self.start_replay(version, since, until, limit, inline=wait)
        if not wait:
            return job
        answer = dict(tasks.wait(job))
        answer["differences"] = job.stored_result().load()
        return answer

    def start_replay(
        self,
        version: Any,
        since: Any = None,
        until: Any = None,
        limit: Any = None,
        inline: bool = False,
    ) -> jobs_.Job:
        """Start a replay job (see ``replay``); bad input raises here, before a job exists."""
        given = {"since": since, "until": until, "limit": limit}
        window = replay.parse_window({k: [str(v)] for k, v in given.items() if v is not None})
        return replay.replay_job(self, version, window, inline=inline)
