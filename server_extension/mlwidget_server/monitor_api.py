"""Feedback and the monitor over REST (docs/monitoring.md): ``POST ?_action=feedback`` (any
role on the model; a viewer on the predictions answered to it), ``POST
?_action=append&from=feedback`` (trainer: an append) and ``GET ?_monitor`` (trainer). The work
is mlwidget.feedback, mlwidget.served and mlwidget.monitoring; this parses and answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlwidget import BadRequest, feedback, monitoring

from .bodies import clip, last

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
