"""The Open Inference Protocol (V2) under ``{base_url}mlhandler/v2/``: health, server and model
metadata, readiness and inference, for the serving model and for each kept version
(``models/{name}/versions/{n}/...``). The protocol's decoding and encoding is ``mlwidget.oip``;
these handlers authenticate (Jupyter's token, ``read``), call the model, and answer; errors are
the protocol's ``{"error": ...}`` with a 4xx."""

from __future__ import annotations

from typing import Any

import tornado.web

from mlwidget import NotFound, PayloadTooLarge, __version__, oip, tables, versions
from mlwidget.jsonable import to_jsonable
from mlwidget.store import check_name

from .bodies import dumps
from .handlers import BaseHandler

PREFIX = r"mlhandler/v2"
MODEL = r"models/([^/]+)(?:/versions/([^/]+))?"


class V2Handler(BaseHandler):
    """Authenticated (as every mlwidget handler) and authorized to ``read``."""

    async def prepare(self) -> None:
        await super().prepare()
        if not self._finished and self.current_user:
            await self.check_authorized("read")

    async def model(self, name: str, version: str | None) -> Any:
        model = await self.registry.get_model(name)
        if version is not None:
            kept = [str(v["version"]) for v in reversed(await self.registry.run(model.versions))]
            if version not in kept:
                raise NotFound(
                    f"Model {name!r} has no version {version!r}; it keeps "
                    f"{', '.join(kept) or 'none'}."
                )
        return model


class ServerMetadataHandler(V2Handler):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.send_json({"name": "mlwidget", "version": __version__, "extensions": []})

    @tornado.web.authenticated
    async def put(self) -> None:  # PUT mlhandler/v2?_model...: a model named "v2" cannot be served
        check_name("v2")  # raises the same BadRequest as MLModel("v2")


class HealthHandler(V2Handler):
    @tornado.web.authenticated
    async def get(self, which: str) -> None:
        await self.send_json({which: True})


class ModelMetadataHandler(V2Handler):
    @tornado.web.authenticated
    async def get(self, name: str, version: str | None = None) -> None:
        m = await self.model(name, version)

        def gather() -> dict:
            info = m.info()
            kept = [v["version"] for v in reversed(m.versions())]
            model = m.pipeline
            if version is not None and version != str(info.get("version")):
                entry = _entry(m, version)
                model = m._version_pipeline(entry)
                info = {**info, "schema": entry["schema"], "version": entry["version"]}
            classes = getattr(model, "classes_", None)
            listed = None if classes is None else to_jsonable(list(classes))
            return oip.metadata(info, kept, listed)

        await self.send_json(await self.registry.run(gather))


class ModelReadyHandler(V2Handler):
    """Answers at once from the stored state: never waits for a model's start-up training
    (503 naming its job, as KServe answers a model not ready), never loads a model."""

    @tornado.web.authenticated
    async def get(self, name: str, version: str | None = None) -> None:
        starting = self.registry.starting(check_name(name))
        if starting is not None:
            raise starting
        m = await self.model(name, version)
        info = await self.registry.run(m.info)
        if not info.get("fitted"):
            raise NotFound(f"Model {name!r} is not ready: it has no fitted estimator yet.")
        await self.send_json({"name": name, "ready": True})


@tornado.web.stream_request_body
class InferHandler(V2Handler):
    """The body is read as it arrives, within ``max_body_size`` (413 past it, as for the
    MLHandler API), and the table within ``max_table_cells``."""

    def initialize(self, name: str, registry: Any) -> None:  # type: ignore[override]
        super().initialize(name, registry)
        self._chunks: list[bytes] = []
        self._received = 0

    async def prepare(self) -> None:
        await super().prepare()
        if self._finished or not self.current_user:
            return
        self.limit_body()

    def data_received(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received <= self.registry.max_body_size:
            self._chunks.append(chunk)

    @tornado.web.authenticated
    async def post(self, name: str, version: str | None = None) -> None:
        m = await self.model(name, version)
        header = self.request.headers.get("Inference-Header-Content-Length")
        if self._received > self.registry.max_body_size:
            raise PayloadTooLarge("The request body is over MLWidgetApp.max_body_size.")
        body = b"".join(self._chunks)
        self._chunks = []
        # A loaded, compiled model answers a few rows from memory, on the loop (as the REST
        # GET does); anything else (loading, compiling, many rows, errors) on a worker.
        answer = None if version is not None else answer_on_loop(m, name, body, header)
        if answer is not None:
            self.finish(dumps(answer))
            return

        def infer() -> str:
            request, tail = oip.parse_body(body, header)
            outputs = tuple(oip.requested(request))
            schema = _schema_of(m, version) if version is not None else m.features
            numeric = tuple(f["name"] for f in schema if f.get("dtype") == "number")
            frame = oip.request_frame(request, tail, [f["name"] for f in schema], numeric)
            answers = m.version_answers(version, frame, outputs)
            served = int(version) if version is not None else m.version
            return dumps(
                oip.response(
                    name, served, request, answers.get("predict"), answers.get("predict_proba")
                )
            )

        self.finish(await self.registry.run(infer))


SMALL_BODY = 16 * 1024  # bytes: parsed on the event loop in well under a millisecond


def answer_on_loop(m: Any, name: str, body: bytes, header: str | None) -> dict | None:
    """The V2 answer of a small request by the serving model's compiled predictor, if it is
    loaded and compiled already and answers these rows; else None, and the worker thread
    answers (or refuses) as always. Never loads, compiles or raises: the answers are those the
    worker would give (the same columns, the predictor the worker's ``predict`` asks first)."""
    if len(body) > SMALL_BODY or not getattr(m, "fast_path", False):
        return None
    try:
        snap = m._snapshot()
        fast, pipeline = snap.loaded_fast(), snap.loaded_pipeline()
        if fast is None or pipeline is None:
            return None
        request, tail = oip.parse_body(body, header)
        outputs = oip.requested(request)
        schema = snap.schema
        numeric = tuple(f["name"] for f in schema if f.get("dtype") == "number")
        names = [f["name"] for f in schema]
        columns = oip.request_columns(request, tail, names, numeric)
        rows = {f: columns[f].tolist() for f in names}
        predictions = probabilities = None
        if "predict" in outputs:
            predictions = fast.predict(rows)
            if predictions is None:
                return None
        if "predict_proba" in outputs:
            cells = len(rows[names[0]]) * len(fast.classes_json or [])
            if not hasattr(pipeline, "predict_proba") or cells > tables.MAX_CELLS:
                return None  # the worker's 400 or 413
            probabilities = fast.predict_proba(rows)
            if probabilities is None:
                return None
        return oip.response(name, versions.serving(snap.state), request, predictions, probabilities)
    except Exception:  # the worker gives the error, or the pipeline's answer
        return None


def _entry(m: Any, version: str) -> dict:
    return versions.find(m._snapshot().state, version, m.name)


def _schema_of(m: Any, version: str) -> list[dict]:
    return list(_entry(m, version)["schema"])


def routes(deps: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    """The V2 routes (before the model routes: ``mlhandler/v2`` is not a model's URL)."""
    return [
        (rf"{PREFIX}/?", ServerMetadataHandler, deps),
        (rf"{PREFIX}/health/(live|ready)/?", HealthHandler, deps),
        (rf"{PREFIX}/{MODEL}/ready/?", ModelReadyHandler, deps),
        (rf"{PREFIX}/{MODEL}/infer/?", InferHandler, deps),
        (rf"{PREFIX}/{MODEL}/?", ModelMetadataHandler, deps),
    ]
