"""``SpoolingHandler``: a handler whose request body is read as it arrives
(``@tornado.web.stream_request_body``), never whole in memory. 413 from its Content-Length past
``max_body_size`` before it is read; without one, the bytes are counted and dropped past the
limit. What arrives is spooled (in memory, then on disk past ``streaming.SPOOL_BYTES``) and
closed when the handler finishes or the client goes away."""

from __future__ import annotations

from asyncio import Future
from typing import IO, TYPE_CHECKING, Any

from tornado.http1connection import HTTP1Connection

from mlwidget import PayloadTooLarge

from . import streaming
from .base import BaseHandler

if TYPE_CHECKING:
    from .registry import Registry


class SpoolingHandler(BaseHandler):
    """For ``@tornado.web.stream_request_body`` handlers: the body, within ``max_body_size``."""

    def initialize(self, name: str, registry: Registry) -> None:  # type: ignore[override]
        super().initialize(name, registry)
        self._spool: IO[bytes] | None = None  # a streamed body: in memory, on disk past SPOOL_BYTES
        self._received = 0
        self._too_large = False
        self._body_taken = False
        self._prepared = False

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        self._prepared = True  # tornado reads the body from now on

    def finish(self, *args: Any, **kwargs: Any) -> Future[None]:
        if not self._prepared:
            # Answered before the body was read (an early 403 or 413, a login redirect):
            # tornado closes the connection after this answer rather than read the body. Say
            # so, or a proxy (configurable-http-proxy) sends its next request on this socket
            # and fails with 503 "socket hang up".
            self.set_header("Connection", "close")
        return super().finish(*args, **kwargs)

    def limit_body(self) -> None:
        """For a streamed body: 413 from its Content-Length past ``max_body_size``, before it
        is read. Bodies without a Content-Length are counted in ``data_received`` and dropped
        beyond the limit; the connection itself gives up at twice the limit."""
        limit = self.registry.max_body_size
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(
                f"The request body is {int(length)} bytes; this server accepts at most {limit} "
                "bytes (MLWidgetApp.max_body_size). Send a smaller body or raise the limit."
            )
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):  # the HTTP/1 server's: all tornado has
            connection.set_max_body_size(2 * limit + 1)

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self._received += len(chunk)
        if self._received > self.registry.max_body_size:
            self._too_large = True
            self.on_finish()
        else:
            if self._spool is None:
                self._spool = streaming.new_spool()
            self._spool.write(chunk)

    def body(self) -> bytes:
        self.check_body_size()
        return streaming.read_all(self.spool())

    def spool(self) -> IO[bytes] | None:
        """The request's body as received (None: empty); from now on it is the handler's to
        close when it finishes, not the connection's when it closes."""
        self._body_taken = True
        return self._spool

    def on_connection_close(self) -> None:
        """The client went away: a body still arriving (an aborted upload) is closed now, its
        temporary file with it, not whenever the garbage collector finds the handler."""
        super().on_connection_close()
        if not self._body_taken:
            self.on_finish()

    def check_body_size(self) -> None:
        if self._too_large:
            raise PayloadTooLarge(
                f"The request body is over {self.registry.max_body_size} bytes, the most this server "
                "accepts (MLWidgetApp.max_body_size). Send a smaller file or raise the limit."
            )

    def on_finish(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
