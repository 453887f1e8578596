"""POST /v2/models/{name}[/versions/{v}]/infer as a plain ASGI callable: the hot route skips Starlette's router,
middleware, Request and Response objects, which cost more per one-row request than the protocol work itself; the
other routes stay in edgeclf.serve.app. The route's errors are the same `{"error": ...}` answers."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from edgeclf.runtime.errors import InputError, first_line
from edgeclf.runtime.inputs import as_float32_rows
from edgeclf.serve.batcher import Overloaded, Result
from edgeclf.serve.front import JSON_TYPE, Receive, Scope, Send, respond, respond_error
from edgeclf.serve.models import Loaded, Models
from edgeclf.serve.protocol import (
    HEADER_LENGTH,
    InferRequest,
    ProtocolError,
    decompress,
    encode_response,
    parse_request,
)

BINARY_TYPE = (b"content-type", b"application/octet-stream")
WANTED = {b"content-length": "length", HEADER_LENGTH.encode(): "header", b"content-encoding": "encoding"}


class ClientGone(Exception):
    """The client disconnected before its body was read: nothing to answer."""


def acquire(models: Models, name: str, version: str | None) -> Loaded:
    """The model's current version, held until release(); 404 for an unknown name or another version."""
    loaded = models.acquire(name)
    if loaded is None:
        raise ProtocolError(404, f"unknown model {name!r}: this server has {', '.join(sorted(models.folders))}")
    if version is not None and version != loaded.version:
        loaded.release()
        raise ProtocolError(404, f"model {name!r} is at version {loaded.version}, not {version!r}")
    return loaded


def described(models: Models, name: str, version: str | None) -> Loaded:
    """The loaded model a metadata or readiness answer describes (held only while it is looked up: nothing runs on
    it); the errors are acquire's."""
    loaded = acquire(models, name, version)
    loaded.release()
    return loaded


class Infer:
    """The infer route; Front calls it with the model name and version that infer_target found in the path."""

    def __init__(self, models: Models, max_body: int) -> None:
        self.models, self.max_body = models, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None) -> None:
        if scope["method"] != "POST":
            await respond_error(send, 405, f"method {scope['method']} is not allowed on {scope['path']}",
                                (b"allow", b"POST"))
            return
        try:
            loaded = acquire(self.models, name, version)
            try:
                body, headers = await self._answer(scope, receive, loaded)
            finally:
                loaded.release()
        except ProtocolError as e:
            await respond_error(send, e.status, str(e))
        except ClientGone:  # logged as 499 (nginx's "client closed request"); uvicorn drops the answer
            await respond(send, 499, b"")
        except Exception as e:  # the request is answered; Front writes the one stderr line
            await respond_error(send, 500, f"internal error: {first_line(e)}")
            raise
        else:
            await respond(send, 200, body, *headers)

    async def _answer(self, scope: Scope, receive: Receive, loaded: Loaded) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        clf = loaded.clf
        got: dict[str, str] = {}
        for key, value in scope["headers"]:
            what = WANTED.get(key)
            if what is not None and what not in got:
                got[what] = value.decode("latin-1")
        body = await read_body(receive, got, self.max_body)
        req = parse_request(body, got.get("header"), clf.manifest.signature.input, clf.n_features_in_)
        rows = checked_rows(loaded, req)
        scope["edgeclf.rows"] = len(rows)
        result = await submit(loaded, rows, req)
        data, header_length = encode_response(loaded.name, loaded.version, req, result)
        if header_length is None:
            return data, [JSON_TYPE]
        return data, [BINARY_TYPE, (HEADER_LENGTH.encode(), str(header_length).encode())]


def checked_rows(loaded: Loaded, req: InferRequest) -> np.ndarray:
    """The request's rows as the model's own checks accept them (the HTTP and the gRPC infer alike), before they
    join a batch: a bad category index or NaN outside the features the model fills is this request's 400 naming
    its own row, not the batch's failure (Classifier.check leaves out the Python API's allow_nonfinite hint)."""
    try:
        return as_float32_rows(loaded.clf.check(req.rows))
    except InputError as e:
        raise ProtocolError(400, first_line(e)) from None


def submit(loaded: Loaded, rows: np.ndarray, req: InferRequest) -> asyncio.Future[Result]:
    """The rows handed to the model's batcher; 503 when its queue is full."""
    try:
        return loaded.batcher.submit(rows, frozenset(name for name, _ in req.outputs))
    except Overloaded as e:
        raise ProtocolError(503, f"overloaded: {e}; retry later") from None


def too_large(limit: int, size: int | None = None) -> ProtocolError:
    """413 for a request over --max-body-mb (an HTTP body, a gRPC message), its size named when known."""
    what = "request body" if size is None else f"request body of {size} bytes"
    return ProtocolError(413, f"{what} is over this server's limit of {limit} bytes (--max-body-mb): "
                              "split the rows over several requests")


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The body (inflated if compressed), refused (413) as soon as it is known to exceed `limit` bytes: by
    Content-Length, while read, or while inflated."""
    declared = headers.get("length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit, int(declared))
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message: dict[str, Any] = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return decompress(body, headers.get("encoding", "identity").lower(), limit)
