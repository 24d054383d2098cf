"""The Open Inference Protocol (V2) under ``{base_url}mlhandler/v2/``: health, server and model
metadata, readiness and inference, for the serving model and for each kept version
(``models/{name}/versions/{n}/...``). The protocol's decoding and encoding is ``mlwidget.oip``;
these handlers authenticate (Jupyter's token, ``read``), call the model, and answer; errors are
the protocol's ``{"error": ...}`` with a 4xx."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import tornado.web

from mlwidget import NotFound, __version__, limits, oip, predicting, predlog, versions
from mlwidget.errors import Forbidden
from mlwidget.jsonable import dumps, to_jsonable
from mlwidget.store import check_name

from .base import BaseHandler
from .spooling import SpoolingHandler

if TYPE_CHECKING:
    from mlwidget import MLModel

PREFIX = r"mlhandler/v2"
MODEL = r"models/([^/]+)(?:/versions/([^/]+))?"


class V2Handler(BaseHandler):
    """Authenticated (as every mlwidget handler) and authorized to ``read``."""

    async def admit(self) -> None:
        """A viewer of the model named in the path (the server's routes: any caller with a
        role), or the server's own user with Jupyter's ``read``."""
        name = str(self.path_args[0]) if self.path_args else None
        caller = self.caller_access()
        if name is None and not caller.is_owner:
            if not caller.grants:
                raise Forbidden(caller.refusal("viewer", "*", "The V2 server's metadata"))
            return
        await self.require("viewer", name or "*", f"V2 {self.request.method}", "read")

    async def model(self, name: str, version: str | None) -> MLModel:
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
                kept_version = m.snapshot(version)  # detached: that version's own pipeline
                model = kept_version.pipeline()
                info = {**info, "schema": kept_version.schema, "version": int(version)}
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
class InferHandler(V2Handler, SpoolingHandler):
    """The body is read as it arrives, within ``max_body_size`` (413 past it, as for the
    MLHandler API), and the table within ``max_table_cells``."""

    async def admit(self) -> None:
        await super().admit()
        self.limit_body()

    @tornado.web.authenticated
    async def post(self, name: str, version: str | None = None) -> None:
        started = time.perf_counter()  # a logged prediction's latency
        m = await self.model(name, version)
        header = self.request.headers.get("Inference-Header-Content-Length")
        body = self.body()
        # A loaded, compiled model answers a few rows from memory, on the loop (as the REST
        # GET does); anything else (loading, compiling, many rows, errors) on a worker.
        answer = None if version is not None else answer_on_loop(m, name, body, header, started)
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
            predictions, proba = answers.get("predict"), answers.get("predict_proba")
            answer = oip.response(name, served, request, predictions, proba)
            logged(m, frame, "frame", predictions, proba, answer, request, started, served)
            return dumps(answer)

        self.finish(await self.registry.run(infer))


SMALL_BODY = 16 * 1024  # bytes: parsed on the event loop in well under a millisecond


def answer_on_loop(
    m: MLModel, name: str, body: bytes, header: str | None, started: float | None = None
) -> dict | None:
    """The V2 answer of a small request by the serving model's compiled predictor, if it is
    loaded and compiled already and answers these rows; else None, and the worker thread
    answers (or refuses) as always. Never loads, compiles or raises: the answers are those the
    worker would give (the same columns, the predictor the worker's ``predict`` asks first).
    With ``started`` (when the request began), the answer is logged if the model logs."""
    if len(body) > SMALL_BODY or not getattr(m, "fast_path", False):
        return None
    try:
        snap = m.snapshot()
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
            if not hasattr(pipeline, "predict_proba") or cells > limits.current().max_table_cells:
                return None  # the worker's 400 or 413
            probabilities = fast.predict_proba(rows)
            if probabilities is None:
                return None
        serving = versions.serving(snap.state)
        answer = oip.response(name, serving, request, predictions, probabilities)
    except Exception:  # the worker gives the error, or the pipeline's answer
        return None
    if started is not None:
        logged(m, rows, "columns", predictions, probabilities, answer, request, started, serving)
    return answer


def logged(
    m: MLModel,
    rows: Any,
    kind: str,
    predictions: list[Any] | None,
    proba: list[Any] | None,
    answer: dict[str, Any],
    request: Mapping[str, Any],
    started: float,
    version: int | None,
) -> None:
    """Log a V2 answer (when the model logs): its ``id`` becomes the rows' prediction ids
    (as ``X-Prediction-Id`` lists them), the request's own ``id`` moves to the answer's
    ``parameters.request_id``."""
    if predictions is None:
        predictions = predicting.best_classes(proba or [])
    done = predlog.answered(m, "v2", rows, predictions, started, proba, kind, version)
    if done is not None:
        if "id" in request:
            answer["parameters"] = {"request_id": request["id"]}
        answer["id"] = done.header()


def _schema_of(m: MLModel, version: str) -> list[dict]:
    """The input schema of the kept ``version`` (from the state: nothing is loaded)."""
    return list(versions.find(m.snapshot().state, version, m.name)["schema"])


def routes(deps: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    """The V2 routes (before the model routes: ``mlhandler/v2`` is not a model's URL)."""
    return [
        (rf"{PREFIX}/?", ServerMetadataHandler, deps),
        (rf"{PREFIX}/health/(live|ready)/?", HealthHandler, deps),
        (rf"{PREFIX}/{MODEL}/ready/?", ModelReadyHandler, deps),
        (rf"{PREFIX}/{MODEL}/infer/?", InferHandler, deps),
        (rf"{PREFIX}/{MODEL}/?", ModelMetadataHandler, deps),
    ]
