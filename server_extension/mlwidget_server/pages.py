"""The server's HTML pages: the model page (``GET {base_url}mlhandler/{name}`` with no query: the
default page, or the model's own ``template``), the model's API page (``?_openapi&_format=html``)
and the listing page (``GET {base_url}mlhandler/`` from a browser). Mixins of the handlers, which
provide ``registry``, ``api_url`` and the model. The pages load nothing from elsewhere (their
CSS and scripts are inline: they work offline)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import tornado.template
from jupyter_server.utils import url_escape, url_path_join

from mlwidget import NotFound, access
from mlwidget.api import METRICS
from mlwidget.display import fmt_num
from mlwidget.jsonable import to_jsonable as jsonable

from .bodies import last

if TYPE_CHECKING:
    from mlwidget import MLModel

    from .base import BaseHandler as Handler  # what the mixins are mixed into
    from .registry import Registry
else:
    Handler = object

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
_loader = tornado.template.Loader(TEMPLATES)
# The pages' scripts and styles are inline; they may only call the server they came from.
CSP = (
    "frame-ancestors 'self'; default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'"
)


# Characters that may not appear as themselves in JSON written inside an inline <script>.
_SCRIPT_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def script_json(value: Any) -> str:
    """``value`` as JSON to write inside an inline ``<script>``: ``<``, ``>``, ``&``, U+2028
    and U+2029 as ``\\u`` escapes (they occur only inside strings, where JSON and JavaScript
    read the escape as the character). A category ``<!--<script>`` then cannot put the HTML
    parser into the state where ``</script>`` no longer ends the script (tornado's
    ``json_encode`` escapes only ``</``), and the script reads back the same value."""
    return json.dumps(value).translate(_SCRIPT_ESCAPES)


def send_page(handler: Any, html: bytes) -> None:
    handler.set_header("Content-Security-Policy", CSP)
    handler.finish(html, set_content_type="text/html; charset=UTF-8")


def server_url(handler: Any) -> str:
    """The scheme and host the request came to: ``http://127.0.0.1:8888``."""
    return f"{handler.request.protocol}://{handler.request.host}"


class PagesBase(Handler):
    """What the page mixins share: the URL of a model's API."""

    def api_url(self, name: str) -> str:
        return url_path_join(self.base_url, "mlhandler", url_escape(name))


class PageMixin(PagesBase):
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
            **page_role(self.caller_access(), m.name),
            name=m.name,
            api_url=self.api_url(m.name),
            list_url=url_path_join(self.base_url, "mlhandler/"),
            v2_url=url_path_join(self.base_url, "mlhandler/v2/models", m.name),
            metrics=list(METRICS.get(kind or "", ())),
            script_json=script_json,
            jsonable=jsonable,
            **ctx,
        )
        send_page(self, html)

    async def render_api_page(self, m: MLModel) -> None:
        """The model's OpenAPI document for humans, with snippets (apipage.py)."""
        from .apipage import operations, snippets
        from .openapi import openapi_document

        info = jsonable(await self.registry.run(m.info))
        doc = openapi_document(info, self.base_url)
        server = server_url(self)
        html = _loader.load("api.html").generate(
            name=m.name,
            doc=doc,
            api_url=self.api_url(m.name),
            api_root=server + url_path_join(self.base_url, "mlhandler", m.name),
            list_url=url_path_join(self.base_url, "mlhandler/"),
            snippets=snippets(info, server, self.base_url),
            operations=operations(doc),
        )
        send_page(self, html)


def page_role(caller: access.Caller, model: str) -> dict[str, Any]:
    """What the model page offers ``caller``: its role on ``model`` and who it is (shown at
    the top), and which controls to render. The page offers only what the role may do (a
    viewer: predictions; a trainer: also retrain, score, append, parameters; an owner: also
    delete, downloads and the Share panel); the server still checks every request."""
    role = caller.role_on(model) or "viewer"  # a caller with no role never gets the page
    return {
        "role": role,
        "caller_name": "" if caller.is_owner else caller.name,
        "may_train": access.rank(role) >= access.rank("trainer"),
        "may_own": role == "owner",
    }


def prefers_html(accept: str) -> bool:
    """Whether an ``Accept`` header prefers ``text/html`` to JSON: a browser's does; API
    clients (none, ``*/*``, ``application/json``) get JSON."""
    quality: dict[str, float] = {}
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[media.strip().lower()] = max(q, quality.get(media.strip().lower(), 0.0))
    return quality.get("text/html", 0.0) > quality.get("application/json", 0.0)


def statuses(registry: Registry, names: list[str]) -> list[dict[str, Any]]:
    """What the listing shows of each model, from its stored state: never opening, loading or
    compiling one, nor touching the registry's cache order. Each is ``{"state": "training" |
    "ready" | "not fitted" | "error", "loaded": bool, "info": ... or None}``, with ``"error"``,
    and the running training's ``"job"``, ``"stage"`` and ``"progress"`` (of the whole job)."""
    return [status(registry, name) for name in names]


def status(registry: Registry, name: str) -> dict[str, Any]:
    from mlwidget import describe
    from mlwidget import options as opt
    from mlwidget.jobs import board

    from .registry import user_message

    out: dict[str, Any] = {"state": "not fitted", "loaded": False, "info": None}
    error = registry.failure(name)
    try:
        model = registry.cached(name)
        if registry.creating(name) and name in registry.configured:  # what it is made with
            options, params, _ = opt.split(registry.configured[name][0])
            options = {**opt.DEFAULTS, **options, "data": None, "params": params}
            out["info"] = describe.info(name, {"options": options}, registry.allowed_classes)
        elif model is not None:
            out["info"] = model.info()  # what is stored, and whether this process loaded it
        else:
            state = registry.store.read_state(name)[0]
            if state is not None:
                out["info"] = describe.info(name, state, registry.allowed_classes)
    except Exception as exc:  # noqa: BLE001 -- a broken model is a row, not a 500
        error = error or user_message(exc)
    info = out["info"] or {}
    out["loaded"] = bool(info.get("loaded"))
    retraining = [
        job
        for job in board.of_model((str(registry.store.root), name))
        if job.action == "retrain" and not job.done
    ]
    job = registry.training_job(name) or (retraining[0] if retraining else None)
    if job is not None:
        out.update(job=job.id, stage=job.stage, progress=round(job.overall, 4))
    if info.get("fitted"):
        out["state"] = "ready"
    elif registry.creating(name) or job is not None:
        out["state"] = "training"
    elif error or out["info"] is None:
        out["state"] = "error"
        error = error or f"Model {name!r} is not in the store."
    if error:
        out["error"] = error
    return out


class ListingMixin(PagesBase):
    """The listing page (``GET {base_url}mlhandler/`` from a browser), for ``ModelListHandler``:
    the models, and the "New model" flow (preview a file, pick the target and the class,
    create and train, land on the model page)."""

    def wants_html(self) -> bool:
        return prefers_html(self.request.headers.get("Accept", ""))

    def get_login_url(self) -> str:
        """A browser opening the listing without being logged in goes to Jupyter's login page
        (and comes back); API requests get 403 as usual."""
        from jupyter_server.base.handlers import JupyterHandler

        if self.request.method == "GET" and self.wants_html():
            return JupyterHandler.get_login_url(self)
        return super().get_login_url()

    async def send_listing(self) -> None:
        """``GET {base_url}mlhandler/``: the listing page for a browser, else JSON. Both show
        each model's state from the store, at once: none is opened, loaded or waited for."""
        app = self.registry
        self.set_header("Vary", "Accept")
        caller = self.caller_access()  # a key or a colleague sees the models it has a role on
        names = [name for name in await app.run(app.model_names) if caller.sees(name)]
        if self.wants_html():  # a browser: the listing page and "New model"
            await self.render_listing(names)
            return
        patterns = {name: pattern for pattern, name in app.routes}
        models = []
        for name, status in zip(names, await app.run(statuses, app, names), strict=True):
            url = url_path_join(self.base_url, "mlhandler", name)
            entry = {"name": name, "url": url, "openapi": f"{url}?_openapi"}
            if name in patterns:
                entry["pattern"] = url_path_join(self.base_url, patterns[name].lstrip("/"))
            entry.update({k: v for k, v in status.items() if k != "info"})
            models.append(entry)
        await self.send_json({"models": models})

    async def model_rows(self, names: list[str]) -> list[dict[str, Any]]:
        """One row per model: what the listing's table shows (from the stored state)."""
        rows = []
        found = await self.registry.run(statuses, self.registry, names)
        caller = self.caller_access()  # an owner's rows offer Delete
        for name, status in zip(names, found, strict=True):
            row: dict[str, Any] = {"name": name, "url": self.api_url(name)}
            row["owner"] = caller.role_on(name) == "owner"
            row.update({k: v for k, v in status.items() if k != "info"})
            info = status["info"] or {}
            fitted = info.get("fitted") or {}
            cv = fitted.get("cv_score") or {}
            row.update(
                model=info.get("model") or "",
                kind=info.get("kind") or "",
                target=info.get("target_col") or "",
                metric=cv.get("metric") or fitted.get("metric") or "",
                score=cv.get("value") if cv else fitted.get("score"),
                score_on=cv.get("on") or fitted.get("score_on") or "",
                version=info.get("version"),
                fitted=bool(fitted),
            )
            rows.append(jsonable(row))
        return rows

    async def render_listing(self, names: list[str]) -> None:
        from mlwidget.estimators import KINDS, list_estimators
        from mlwidget.suggest import DEFAULT_CLASSES

        self.xsrf_token  # noqa: B018 -- sets the _xsrf cookie the page's scripts send back
        list_url = url_path_join(self.base_url, "mlhandler/")
        html = _loader.load("listing.html").generate(
            list_url=list_url,
            models=await self.model_rows(names),
            estimators={kind: list_estimators(kind) for kind in KINDS},
            default_classes=DEFAULT_CLASSES,
            script_json=script_json,
            fmt_num=fmt_num,
        )
        send_page(self, html)

    async def send_preview(
        self, body: bytes, content_type: str, args: dict[str, list[str]]
    ) -> None:
        """``POST mlhandler/?_action=preview``: what a model made from the body's table would
        be (``bodies.preview``), and its name as the server decides it (``mlwidget.names``):
        ``suggested_name`` from ``filename=`` (the uploaded file's name), and ``name_error``,
        why ``name=`` (else the suggested name) cannot name a new model, or null. With
        ``name=`` and no body: only ``name`` and ``name_error`` (a typed name, checked
        without sending the file again)."""
        from mlwidget.names import name_error, suggested_name

        from .bodies import preview

        run, store = self.registry.run, self.registry.store
        typed = last(args, "name")
        if typed is not None and not body.strip():
            answer: dict[str, Any] = {"name": typed}
        else:
            answer = await run(preview, body, content_type, args)
            taken = list(self.registry.configured)  # models made at the server's start
            filename = last(args, "filename") or ""
            answer["suggested_name"] = await run(suggested_name, filename, store, taken)
            answer["name"] = typed or answer["suggested_name"]
        answer["name_error"] = await run(name_error, answer["name"], store)
        await self.send_json(answer)
