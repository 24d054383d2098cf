"""Large request bodies without holding them in memory, and bulk predictions of a large CSV body
answered chunk by chunk (issue 12).

A body is kept in memory up to ``SPOOL_BYTES`` and spooled to a temporary file past that. A
synchronous ``POST ?_action=predict`` whose body is a CSV of more than ``STREAM_BYTES`` is read
``chunked.CHUNK_ROWS`` rows at a time, predicted
chunk by chunk from one version of the model, and its JSON answer is written in pieces. Every
chunk is predicted before the first byte is written, so an error anywhere is still a clean 400.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable
from typing import IO, TYPE_CHECKING, Any, Protocol

from mlwidget import chunked
from mlwidget.errors import UnsupportedFormat
from mlwidget.jsonable import dumps
from mlwidget.tables import format_of

from .bodies import parse_body

if TYPE_CHECKING:
    from tornado.httputil import HTTPServerRequest

    from mlwidget import MLModel
    from mlwidget.jobs import Job

    from .registry import Registry

SPOOL_BYTES = 8 * 1024 * 1024
STREAM_BYTES = 16 * 1024 * 1024


class PredictHandler(Protocol):
    """What answering a large predict body needs of its handler (``ModelHandler``)."""

    request: HTTPServerRequest
    registry: Registry

    def spool(self) -> IO[bytes] | None: ...

    def body(self) -> bytes: ...

    async def answer_job(self, m: MLModel, job: Job, wait: bool) -> None: ...

    def set_header(self, name: str, value: Any) -> None: ...

    def write(self, chunk: str | bytes | dict) -> None: ...

    def flush(self, include_footers: bool = False) -> Awaitable[None]: ...

    def finish(self, chunk: str | bytes | dict | None = None) -> Awaitable[None]: ...


def new_spool() -> IO[bytes]:
    """A file that stays in memory up to ``SPOOL_BYTES``, then moves to disk."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, prefix="mlwidget-body-")


def size(spool: IO[bytes] | None) -> int:
    return 0 if spool is None else spool.tell()


def read_all(spool: IO[bytes] | None) -> bytes:
    if spool is None:
        return b""
    end = spool.tell()
    spool.seek(0)
    try:
        return spool.read()
    finally:
        spool.seek(end)


def streams(spool: IO[bytes] | None, content_type: str, args: dict[str, list[str]]) -> bool:
    """Whether this predict request goes chunk by chunk: a CSV body over ``STREAM_BYTES``,
    answered as JSON predictions (other answers and formats take the whole-table path)."""
    fmt = (args.get("_format") or [""])[-1]
    if spool is None or fmt not in ("", "json") or size(spool) <= STREAM_BYTES:
        return False
    end = spool.tell()
    spool.seek(0)
    head = spool.read(64 * 1024)
    spool.seek(end)
    try:
        return format_of(head, content_type.split(";")[0].strip().lower() or None) == "csv"
    except UnsupportedFormat:
        return False


async def answer_large(
    handler: PredictHandler, m: MLModel, wait: bool, args: dict[str, list[str]]
) -> bool:
    """Answer a synchronous ``POST ?_action=predict`` of a large CSV body (see ``streams``), and
    say whether it was: on a Dask executor as a job of partitions over the cluster (the answer
    awaited, as a plain POST waits for a retrain), else chunk by chunk in this process."""
    ctype = handler.request.headers.get("Content-Type", "")
    spool = handler.spool()
    if not wait or not streams(spool, ctype, args):
        return False
    run = handler.registry.run
    if getattr(handler.registry.runner, "executor", None) == "dask":
        frame = await run(parse_body, handler.body(), ctype, args)
        await handler.answer_job(m, await run(m.start_job, "predict", frame, None), True)
    else:
        await write_json_pieces(handler, await run(json_pieces, m, spool))
    return True


def json_pieces(m: MLModel, spool: IO[bytes]) -> list[str]:
    """The predictions of the CSV in ``spool`` as pieces of one JSON list's text (the pieces
    joined by commas inside ``[...]``). Runs on a worker thread."""
    spool.seek(0)
    chunks = chunked.csv_chunks(spool)
    return [piece for piece in m.predict_parts(chunks, _inner_json) if piece]


def _inner_json(preds: list[Any]) -> str:
    return dumps(preds)[1:-1]


async def write_json_pieces(handler: PredictHandler, pieces: list[str]) -> None:
    """``[piece,piece,...]``, written and flushed piece by piece."""
    handler.set_header("Content-Type", "application/json; charset=UTF-8")
    handler.write("[")
    for i, piece in enumerate(pieces):
        handler.write(piece if i == 0 else "," + piece)
        pieces[i] = ""  # let the written text go
        await handler.flush()
    handler.finish("]")
