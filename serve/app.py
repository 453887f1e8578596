"""The HTTP/REST routes of the Open Inference Protocol over the served models (a Starlette app)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from importlib import metadata
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from edgeclf.runtime.errors import InputError, first_line
from edgeclf.runtime.inputs import as_float32_rows, as_matrix
from edgeclf.serve.batcher import Overloaded
from edgeclf.serve.metrics import CONTENT_TYPE, Metrics
from edgeclf.serve.models import Loaded, Models
from edgeclf.serve.protocol import HEADER_LENGTH, ProtocolError, decompress, encode_response, parse_request

JSON = "application/json"


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps({"error": message}), status, headers, JSON)


def ok(obj: Any) -> Response:
    return Response(json.dumps(obj, separators=(",", ":")), 200, media_type=JSON)


def build_app(models: Models, metrics: Metrics, max_body: int) -> Starlette:
    """The routes; auth, metrics and the access log are the Front middleware's (edgeclf.serve.front)."""
    about_server = {"name": "edgeclf", "version": metadata.version("edgeclf"), "extensions": ["binary_tensor_data"]}

    def acquire(request: Request) -> Loaded:
        name = request.path_params["name"]
        loaded = models.acquire(name)
        if loaded is None:
            raise ProtocolError(404, f"unknown model {name!r}: this server has {', '.join(sorted(models.folders))}")
        version = request.path_params.get("version")
        if version is not None and version != loaded.version:
            loaded.release()
            raise ProtocolError(404, f"model {name!r} is at version {loaded.version}, not {version!r}")
        return loaded

    def about(request: Request) -> Loaded:
        loaded = acquire(request)
        loaded.release()
        return loaded

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

    async def infer(request: Request) -> Response:
        loaded = acquire(request)
        try:
            return await run_infer(request, loaded, max_body)
        except ClientDisconnect:  # left mid-body: nothing to answer; logged as 499 (nginx's "client closed")
            return Response(status_code=499)
        finally:
            loaded.release()

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    routes = [Route("/v2/health/live", live), Route("/v2/health/ready", ready), Route("/v2", server),
              Route("/metrics", prometheus)]
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [Route(prefix, model), Route(prefix + "/ready", model_ready),
                   Route(prefix + "/infer", infer, methods=["POST"])]
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


async def run_infer(request: Request, loaded: Loaded, max_body: int) -> Response:
    clf = loaded.clf
    body = await read_body(request, max_body)
    req = parse_request(body, request.headers.get(HEADER_LENGTH), clf.manifest.signature.input, clf.n_features_in_)
    try:
        rows = as_float32_rows(as_matrix(req.rows, clf.features))  # the runtime's own checks and conversion
    except InputError as e:
        raise ProtocolError(400, first_line(e)) from None
    request.scope["edgeclf.rows"] = len(rows)
    try:
        future = loaded.batcher.submit(rows, frozenset(name for name, _ in req.outputs))
    except Overloaded as e:
        raise ProtocolError(503, f"overloaded: {e}; retry later") from None
    result = await future
    data, header_length = encode_response(loaded.name, loaded.version, req, result)
    if header_length is None:
        return Response(data, media_type=JSON)
    return Response(data, media_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)})


async def read_body(request: Request, limit: int) -> bytes:
    """The body (inflated if compressed), refused (413) as soon as it is known to exceed `limit` bytes: by
    Content-Length, while read, or while inflated."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ProtocolError(413, f"request body of {int(declared)} bytes is over this server's limit of {limit} "
                                 "(--max-body-mb): split the rows over several requests")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(413, f"request body is over this server's limit of {limit} bytes (--max-body-mb): "
                                     "split the rows over several requests")
        chunks.append(chunk)
    return decompress(b"".join(chunks), request.headers.get("content-encoding", "identity").lower(), limit)


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
    return error(exc.status, str(exc), {"Retry-After": "1"} if exc.status == 503 else None)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    what = {404: f"no route {request.url.path!r}: see the Open Inference Protocol's /v2 routes",
            405: f"method {request.method} is not allowed on {request.url.path}"}
    return error(exc.status_code, what.get(exc.status_code, exc.detail), dict(exc.headers or {}))


async def server_error(request: Request, exc: Exception) -> Response:
    return error(500, f"internal error: {first_line(exc)}")
