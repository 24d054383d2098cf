"""Benchmark-only Jupyter server extension (never installed; enabled by benchmarks/run.py).

``{base_url}bench/ping``: the floor, a trivial authenticated handler answering ``[0]``.
``{base_url}bench/inline/{name}`` and ``{base_url}bench/pool/{name}``: mlwidget's own
``ModelHandler`` with GET predictions answered by ``MLModel.predict_query``: from memory on the
event loop when it can (``fast_only=True``, else on a worker thread: inline), or always on the
extension's worker threads (pool), to measure the GET change proposed for handlers.py against
the handler as it is.
"""

from __future__ import annotations

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join


class PingHandler(APIHandler):
    @tornado.web.authenticated
    def get(self) -> None:
        self.finish("[0]")


def _query_handlers():
    from mlwidget_server.handlers import ModelHandler

    class BenchHandler(ModelHandler):
        def initialize(self, name: str) -> None:  # type: ignore[override]
            """The registry of the running mlwidget extension (loaded beside this one)."""
            (app,) = self.settings["serverapp"].extension_manager.extension_apps["mlwidget_server"]
            super().initialize(name, app.registry)

    class InlineQueryHandler(BenchHandler):
        """The shipped GET: answer from memory on the event loop, else on a worker thread."""

        @tornado.web.authenticated
        async def get(self, name: str | None = None, *_: str) -> None:
            m = await self.resolve(name)
            args = self.query_args()
            out = m.predict_query(args, fast_only=True)
            if out is None:
                out = await self.registry.run(m.predict_query, args)
            await self.send_json(out)

    class PoolQueryHandler(BenchHandler):
        @tornado.web.authenticated
        async def get(self, name: str | None = None, *_: str) -> None:
            m = await self.resolve(name)
            await self.send_json(await self.registry.run(m.predict_query, self.query_args()))

    return InlineQueryHandler, PoolQueryHandler


def _jupyter_server_extension_points():
    return [{"module": "bench_ext"}]


def _load_jupyter_server_extension(serverapp) -> None:
    base = serverapp.web_app.settings["base_url"]
    inline, pool = _query_handlers()
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "bench/ping"), PingHandler),
            (url_path_join(base, r"bench/inline/([^/]+)"), inline, {"name": "mlwidget"}),
            (url_path_join(base, r"bench/pool/([^/]+)"), pool, {"name": "mlwidget"}),
        ],
    )
