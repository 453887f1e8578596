"""What every request passes first (a plain ASGI wrapper, cheaper than Starlette's middleware): the bearer token,
the metrics and one access-log line on stdout."""

from __future__ import annotations

import hmac
import json
import sys
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from edgeclf.runtime.errors import first_line
from edgeclf.serve.metrics import Metrics

if TYPE_CHECKING:
    from edgeclf.serve.infer import Infer

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
OPEN_PATHS = ("/v2/health/live", "/v2/health/ready")  # probes (a kubelet, a load balancer) carry no token
UNAUTHORIZED = ("missing or wrong bearer token: send the header 'Authorization: Bearer <token>' with the token of "
                "the server's --token-file")


class Front:
    """Every request: the token, then the infer route (edgeclf.serve.infer) or the other routes (app), then the
    metrics and the access-log line."""

    def __init__(self, app: ASGIApp, infer: Infer, metrics: Metrics, model_names: set[str],
                 token: str | None) -> None:
        self.app, self.infer, self.metrics, self.names = app, infer, metrics, model_names
        self.expected = expected_header(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if not authorized(scope["path"], _header(scope, b"authorization"), self.expected):
                await respond_error(sending, 401, UNAUTHORIZED)
            elif (target := infer_target(scope["path"])) is not None:
                await self.infer(scope, receive, sending, *target)
            else:
                await self.app(scope, receive, sending)
        except Exception as e:  # answered 500 already (Infer, Starlette's server_error); one line, no traceback
            status = status or 500
            print(f"edgeclf serve: error on {scope['method']} {scope['path']}: {first_line(e)}", file=sys.stderr)
        self.record(scope, status, time.perf_counter() - start)

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        """The metrics and the access-log line of one request (a gRPC call passes a scope of its own)."""
        path = scope["path"]
        parts = path.split("/", 4)
        model = parts[3] if len(parts) > 3 and parts[1:3] == ["v2", "models"] and parts[3] in self.names else ""
        self.metrics.answered(model, status, seconds if model and path.endswith("/infer") else None)
        rows = scope.get("edgeclf.rows")
        client = scope.get("client") or ("-", 0)
        try:
            sys.stdout.write(f'{client[0]}:{client[1]} "{scope["method"]} {path}" {status} '
                             f'{"-" if rows is None else rows} rows {seconds * 1000:.2f} ms\n')
        except (OSError, ValueError):  # stdout closed (`edgeclf serve | head` ended): keep serving, unlogged
            pass


def expected_header(token: str | None) -> bytes | None:
    """The Authorization value a request must carry (HTTP header, gRPC metadata), or None without a token."""
    return f"Bearer {token}".encode() if token else None


def authorized(path: str, got: bytes | str, expected: bytes | None) -> bool:
    """The token rule of both APIs: without a --token-file everything passes, the health probes always do, any
    other path needs the expected Authorization value (compared in constant time: no timing of the token)."""
    if expected is None or path in OPEN_PATHS:
        return True
    return hmac.compare_digest(got.encode() if isinstance(got, str) else got, expected)


def _header(scope: Scope, name: bytes) -> bytes:
    return next((v for k, v in scope["headers"] if k == name), b"")


def infer_target(path: str) -> tuple[str, str | None] | None:
    """(model, version or None) when path is an infer route, else None."""
    parts = path.split("/")
    if parts[-1] != "infer" or parts[1:3] != ["v2", "models"] or not all(parts[3:-1]):
        return None
    if len(parts) == 5:
        return parts[3], None
    if len(parts) == 7 and parts[4] == "versions":
        return parts[3], parts[5]
    return None


JSON_TYPE = (b"content-type", b"application/json")


def error_headers(status: int) -> dict[str, str]:
    """The headers an error answer of this status takes besides its JSON type (the protocol's 503 asks the client
    to retry; a 401 names the scheme the token is expected in)."""
    return {503: {"retry-after": "1"}, 401: {"www-authenticate": "Bearer"}}.get(status, {})


def error_body(message: str) -> bytes:
    """The protocol's error answer: {"error": message}."""
    return json.dumps({"error": message}).encode()


async def respond(send: Send, status: int, body: bytes, *headers: tuple[bytes, bytes]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def respond_error(send: Send, status: int, message: str, *headers: tuple[bytes, bytes]) -> None:
    extra = [(k.encode(), v.encode()) for k, v in error_headers(status).items()]
    await respond(send, status, error_body(message), JSON_TYPE, *extra, *headers)
