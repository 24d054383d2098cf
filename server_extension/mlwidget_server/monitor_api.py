"""Feedback, the monitor and replay over REST (docs/monitoring.md): ``POST ?_action=feedback``
(any role on the model; a viewer on the predictions answered to it), ``POST
?_action=append&from=feedback`` (trainer: an append), ``GET ?_monitor`` and ``POST
?_action=replay&version=N`` (trainer). The work is mlwidget.feedback, mlwidget.served,
mlwidget.monitoring and mlwidget.replay; this parses and answers."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from mlwidget import BadRequest, feedback, monitoring
from mlwidget import replay as replay_

from .bodies import clip, last, wants_wait

if TYPE_CHECKING:
    from mlwidget import MLModel

    from .base import BaseHandler

SOURCES = ("feedback",)  # ?_action=append&from=...


async def send_monitor(handler: BaseHandler, m: MLModel, args: dict[str, list[str]]) -> None:
    """``GET ?_monitor[&since=&until=&version=&limit=]``."""
    filters = monitoring.parse(args)
    await handler.send_json(await handler.registry.run(monitoring.report, m, filters))


async def answer(handler: Any, m: MLModel, action: str, args: dict[str, list[str]]) -> None:
    """``POST ?_action=feedback`` with a JSON body, or ``?_action=append&from=feedback``."""
    source = last(args, "from")
    run = handler.registry.run
    if action == "feedback" and source is None:
        handler.check_body_size()
        items = await run(lambda: feedback.parse_items(feedback.parse_body(handler.body())))
        caller = handler.caller_access()
        own = None if caller.may("trainer", m.name) else caller.name
        await handler.send_json(await run(feedback.record, m, items, own))
        return
    if action != "append" or source not in SOURCES:
        raise BadRequest(
            f"Expected from=feedback with _action=append (the labelled feedback as training "
            f"rows), got from={clip(str(source), 40)!r} with _action={clip(action, 40)!r}."
        )
    if handler.body().strip():
        raise BadRequest(
            "Expected no body with _action=append&from=feedback: the rows are the labelled "
            "feedback's. POST rows to _action=append without from= to append them."
        )
    await handler.send_json(await run(m.append_feedback))


async def replay(handler: Any, m: MLModel, args: dict[str, list[str]]) -> None:
    """``POST ?_action=replay&version=N[&since=&until=&limit=][&_wait=false]``: a job; its
    answer (when it waits) is the summary with the URL of every differing row."""
    handler.check_body_size()
    if handler.body().strip():
        raise BadRequest(
            "Expected no body with _action=replay: it replays the logged inputs. Choose them "
            "with since=, until= and limit=."
        )
    window = replay_.parse_window(args)
    run = handler.registry.run
    job = await run(replay_.replay_job, m, last(args, "version"), window)
    job.caller = handler.caller()
    if not wants_wait(args):
        await handler.answer_job(m, job, False)
        return
    await asyncio.wrap_future(job.future)
    await handler.send_json(job.to_dict(handler.job_url(m, job))["result"])
