"""``POST ?_action=retrain&source=NAME`` and ``POST ?_action=predict&source=NAME&output=NAME``:
jobs whose workers read a configured source (and write to a configured output) themselves.

A request names sources; it never gives a path or a URL (403: see ``datasets.from_request``),
and never a body as well (the rows are the source's).
"""

from __future__ import annotations

from typing import Any

from mlwidget import MLModel, datasets
from mlwidget.errors import BadRequest

from .bodies import clip, last, wants_flag, wants_wait

SOURCE_ACTIONS = ("retrain", "train", "predict")


def names_a_source(action: str, args: dict[str, list[str]]) -> bool:
    """Whether the request is a source job: ``source=`` on a retrain or a prediction."""
    return action in SOURCE_ACTIONS and last(args, "source") is not None


async def answer(handler: Any, m: MLModel, action: str, args: dict[str, list[str]]) -> None:
    """Start the source job the request asks for and answer it as any job (``_wait``)."""
    if handler.body().strip():
        raise BadRequest(
            "Expected either rows in the request body or source=<name>, got both. A source "
            "job reads its rows from the source; POST the rows without source= instead."
        )
    source = datasets.from_request(last(args, "source"), "source")
    run = handler.registry.run
    metric = last(args, "_metric") or last(args, "metric") or None
    if action in ("retrain", "train"):
        target = last(args, "target_col") or last(args, "_target_col") or None
        job = await run(m.start_retrain, source, target_col=target, metric=metric)
    else:
        output = last(args, "output")
        if output is None:
            raise BadRequest(
                f"Expected output=<name of a configured source> with source={clip(source.name)}: "
                "a prediction from a source writes its answers there, as Parquet files."
            )
        target_out = datasets.from_request(output, "output")
        keys = [k.strip() for value in args.get("keys", []) for k in value.split(",") if k.strip()]
        proba = wants_flag(args, "_proba")
        job = await run(m.predict_source, source, target_out, keys, proba, False)
    job.caller = handler.caller()
    await handler.answer_job(m, job, wants_wait(args))
