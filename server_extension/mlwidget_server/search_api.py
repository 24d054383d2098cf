"""``POST ?_action=search``: a hyper-parameter search of the model as a job (see
mlwidget/search.py and docs/jobs.md, "Hyper-parameter search").

The request is read here: a JSON object body ``{"grid": {"C": [0.1, 1, 10]}, "n_iter": 5,
"cv": 5, "metric": "f1_weighted"}``, or query keys: ``grid.<param>=v1,v2,...`` (a
comma-separated list of values per parameter; the key repeated adds values), ``n_iter``,
``cv`` and ``_metric`` (or ``metric``). A key given both in the body and in the query is a 400.
Values that arrive as text are typed as a PUT types them; everything is checked before a job
exists. The answer is the job's, as a retrain's: 202 with ``_wait=false``, else its result.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlwidget import BadRequest
from mlwidget.options import from_request

from .bodies import clip, last, wants_wait

if TYPE_CHECKING:
    from mlwidget import MLModel

GRID_PREFIX = "grid."
BODY_KEYS = ("grid", "n_iter", "cv", "metric")
EXAMPLE = '{"grid": {"C": [0.1, 1, 10]}}'


def parse_search(body: bytes, args: dict[str, list[str]]) -> dict[str, Any]:
    """The search a request asks for: ``{"grid", "n_iter", "cv", "metric"}`` (None where not
    given), from its JSON body and its query; the request allow-list applies to the grid's
    names (403 for a parameter that names a server file)."""
    given = body_search(body)
    query: dict[str, Any] = {
        "grid": query_grid(args),
        "n_iter": last(args, "n_iter"),
        "cv": last(args, "cv"),
        "metric": last(args, "_metric") or last(args, "metric"),
    }
    both = [key for key in BODY_KEYS if given.get(key) is not None and query[key] is not None]
    if both:
        raise BadRequest(
            f"Expected {', '.join(both)} once, in the JSON body or in the query; got both. "
            "Send each once. Nothing was searched or stored."
        )
    merged = {
        key: given.get(key) if given.get(key) is not None else query[key] for key in BODY_KEYS
    }
    if merged["grid"] is not None:
        from_request({"grid": merged["grid"]})
    return merged


def body_search(body: bytes) -> dict[str, Any]:
    """The JSON object body of a search (empty: {})."""
    if not body.strip():
        return {}
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(
            f"Expected the body of _action=search to be a JSON object such as {EXAMPLE}, got "
            f"{clip(body[:80].decode('utf-8', 'replace'), 80)!r}, which is not JSON. Send the "
            "grid as JSON, or as query keys grid.C=0.1,1,10. Nothing was searched or stored."
        ) from None
    if not isinstance(obj, dict):
        raise BadRequest(
            f"Expected the body of _action=search to be a JSON object such as {EXAMPLE}, got a "
            f"JSON {type(obj).__name__}. Nothing was searched or stored."
        )
    unknown = [str(key) for key in obj if key not in BODY_KEYS]
    if unknown:
        raise BadRequest(
            f"Expected the search body's keys to be among {', '.join(BODY_KEYS)}, got "
            f"{clip(', '.join(map(repr, unknown)), 200)}. Put the parameters to search under "
            f'"grid", such as {EXAMPLE}. Nothing was searched or stored.'
        )
    return obj


def query_grid(args: dict[str, list[str]]) -> dict[str, list[str]] | None:
    """``grid.<param>=v1,v2`` query keys as ``{param: ["v1", "v2"]}`` (None: there are none).
    An empty value or an empty item between commas is a 400: every value is meant."""
    grid: dict[str, list[str]] = {}
    for key, values in args.items():
        if not key.startswith(GRID_PREFIX):
            continue
        name = key[len(GRID_PREFIX) :]
        if not name:
            raise BadRequest(
                "Expected grid.<parameter>=<values>, such as grid.C=0.1,1,10; got a grid key "
                "without a parameter name. Nothing was searched or stored."
            )
        items = [item.strip() for value in values for item in value.split(",")]
        if not items or any(not item for item in items):
            raise BadRequest(
                f"Expected comma-separated values in {key}, such as {key}=0.1,1,10; got "
                f"{clip(','.join(values), 200)!r}, with an empty value. Nothing was searched "
                "or stored."
            )
        grid[name] = items
    return grid or None


async def answer(handler: Any, m: MLModel, args: dict[str, list[str]]) -> None:
    """Start the search ``handler``'s request asks for; answer as a retrain's job answers."""
    wait = wants_wait(args)
    run = handler.registry.run
    asked = await run(parse_search, handler.body(), args)
    job = await run(m.start_search, asked["grid"], asked["n_iter"], asked["metric"], asked["cv"])
    job.caller = handler.caller()
    await handler.answer_job(m, job, wait)
