"""The model page (``GET {base_url}mlhandler/{name}`` with no query): the default page, or the
model's own ``template``. A mixin of ``ModelHandler``, which provides ``registry``, ``api_url``
and the model."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import tornado.escape
import tornado.template
from jupyter_server.utils import url_path_join

from mlwidget import NotFound
from mlwidget.api import METRICS
from mlwidget.jsonable import to_jsonable as jsonable

if TYPE_CHECKING:
    from mlwidget import MLModel

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
_loader = tornado.template.Loader(TEMPLATES)


class PageMixin:
    """Rendering of the model page, for ``ModelHandler``."""

    async def render_page(self, m: MLModel) -> None:
        self.xsrf_token  # noqa: B018 -- sets the _xsrf cookie the page's scripts send back
        options = await self.registry.run(lambda: dict(m.options))
        template = options.get("template")
        if template:
            await self.render_template_file(m, str(template))
        else:
            await self.render_default_page(m)

    async def render_template_file(self, m: MLModel, path: str) -> None:
        import pandas as pd

        if not os.path.isabs(path):
            path = os.path.join(self.serverapp.root_dir, path)
        try:
            data = await self.registry.run(m.data)
        except NotFound:
            data = pd.DataFrame()
        await self.registry.run(lambda: m.pipeline)  # load it off the loop; handler.model reuses it
        try:
            loader = tornado.template.Loader(os.path.dirname(path))
            tmpl = loader.load(os.path.basename(path))
        except OSError:
            raise NotFound(
                f"The template of model {m.name!r} ({os.path.basename(path)}) cannot be read."
            ) from None
        ns = self.get_template_namespace()
        ns.update(handler=self, data=data, name=m.name, api_url=self.api_url(m.name))
        html = tmpl.generate(**ns)
        self.finish(html, set_content_type="text/html; charset=UTF-8")

    async def render_default_page(self, m: MLModel) -> None:
        from mlwidget.estimators import list_estimators

        def gather() -> dict:
            info = m.info()
            try:
                columns = [str(c) for c in m.data().columns]
            except NotFound:
                columns = []
            features = m.features
            if not columns:
                columns = [f["name"] for f in features] + (
                    [info["target_col"]] if info.get("target_col") else []
                )
            kind = info.get("kind")
            return {
                "info": info,
                "features": features,
                "columns": columns,
                "estimators": list_estimators(kind) if kind else list_estimators(),
            }

        ctx = await self.registry.run(gather)
        kind = ctx["info"].get("kind")
        html = _loader.load("page.html").generate(
            name=m.name,
            api_url=self.api_url(m.name),
            list_url=url_path_join(self.base_url, "mlhandler/"),
            v2_url=url_path_join(self.base_url, "mlhandler/v2/models", m.name),
            metrics=list(METRICS.get(kind or "", ())),
            json_encode=tornado.escape.json_encode,
            jsonable=jsonable,
            **ctx,
        )
        self.set_header(
            "Content-Security-Policy",
            "frame-ancestors 'self'; default-src 'none'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
            "form-action 'self'; base-uri 'none'",
        )
        self.finish(html, set_content_type="text/html; charset=UTF-8")
