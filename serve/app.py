"""The HTTP/REST routes of the Open Inference Protocol over the served models (a Starlette app), but for infer
(edgeclf.serve.infer, a plain ASGI callable that Front calls first)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from importlib import metadata
from typing import Any, AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edgeclf.runtime.errors import first_line
from edgeclf.serve.front import error_body, error_headers
from edgeclf.serve.infer import described
from edgeclf.serve.metrics import CONTENT_TYPE, Metrics
from edgeclf.serve.models import Loaded, Models
from edgeclf.serve.protocol import ProtocolError

JSON = "application/json"


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(message), status, {**error_headers(status), **(headers or {})}, JSON)


def ok(obj: Any) -> Response:
    return Response(orjson.dumps(obj), 200, media_type=JSON)


def build_app(models: Models, metrics: Metrics) -> Starlette:
    """The routes but infer; auth, metrics and the access log are the Front middleware's (edgeclf.serve.front)."""
    about_server = {"name": "edgeclf", "version": metadata.version("edgeclf"), "extensions": ["binary_tensor_data"]}

    def about(request: Request) -> Loaded:
        return described(models, request.path_params["name"], request.path_params.get("version"))

    async def live(request: Request) -> Response:
        return ok({"live": True})

    async def ready(request: Request) -> Response:
        return ok({"ready": True})

    async def server(request: Request) -> Response:
        return ok(about_server)

    async def model(request: Request) -> Response:
        return ok(model_metadata(about(request)))

    async def model_ready(request: Request) -> Response:
        loaded = about(request)
        return ok({"name": loaded.name, "ready": True})

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    routes = [Route("/v2/health/live", live), Route("/v2/health/ready", ready), Route("/v2", server),
              Route("/metrics", prometheus)]
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [Route(prefix, model), Route(prefix + "/ready", model_ready)]
    handlers = {ProtocolError: protocol_error, HTTPException: http_error, Exception: server_error}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for name in models.folders:
            metrics.track_queue(name, functools.partial(queue_depth, models, name))
        watcher = asyncio.create_task(models.watch())
        yield
        watcher.cancel()
        models.close()
        await asyncio.to_thread(models.join)

    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)


def queue_depth(models: Models, name: str) -> float:
    return models.current[name].batcher.depth()  # the current version's: the gauge follows a swap


def model_metadata(loaded: Loaded) -> dict[str, Any]:
    m = loaded.clf.manifest
    outputs = [{"name": "probabilities", "datatype": "FP32", "shape": [-1, m.signature.probabilities.columns]},
               {"name": "logits", "datatype": "FP32", "shape": [-1, m.signature.logits.columns]},
               {"name": "label", "datatype": "BOOL", "shape": [-1, len(m.classes)]} if m.multilabel else
               {"name": "label", "datatype": "BYTES", "shape": [-1]}]
    parameters: dict[str, Any] = {"task": m.task, "classes": list(m.classes), "features": list(m.feature_names)}
    if m.multilabel:  # label is then one true/false per label: P(label) >= its threshold
        parameters.update(kind=m.kind, labels=list(m.classes), thresholds=list(m.thresholds))
    return {"name": loaded.name, "versions": [loaded.version], "platform": "onnxruntime_onnx",
            "inputs": [{"name": m.signature.input, "datatype": "FP32", "shape": [-1, len(m.features)]}],
            "outputs": outputs, "parameters": parameters}


async def protocol_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProtocolError)
    return error(exc.status, str(exc))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    what = {404: f"no route {request.url.path!r}: see the Open Inference Protocol's /v2 routes",
            405: f"method {request.method} is not allowed on {request.url.path}"}
    return error(exc.status_code, what.get(exc.status_code, exc.detail), dict(exc.headers or {}))


async def server_error(request: Request, exc: Exception) -> Response:
    return error(500, f"internal error: {first_line(exc)}")
