"""What every request passes first (a plain ASGI wrapper, cheaper than Starlette's middleware): the bearer token,
the metrics and one access-log line on stdout."""

from __future__ import annotations

import hmac
import json
import sys
import time
from typing import Any, Awaitable, Callable

from edgeclf.runtime.errors import first_line
from edgeclf.serve.metrics import Metrics

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
OPEN_PATHS = ("/v2/health/live", "/v2/health/ready")  # probes (a kubelet, a load balancer) carry no token


class Front:
    def __init__(self, app: ASGIApp, metrics: Metrics, model_names: set[str], token: str | None) -> None:
        self.app, self.metrics, self.names = app, metrics, model_names
        self.expected = f"Bearer {token}".encode() if token else None

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
            if self.expected is not None and scope["path"] not in OPEN_PATHS and not self._authorized(scope):
                await _unauthorized(sending)
            else:
                await self.app(scope, receive, sending)
        except Exception as e:  # Starlette has answered 500 already (server_error); one line, no traceback
            status = status or 500
            print(f"edgeclf serve: error on {scope['method']} {scope['path']}: {first_line(e)}", file=sys.stderr)
        self._record(scope, status, time.perf_counter() - start)

    def _authorized(self, scope: Scope) -> bool:
        got = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        return hmac.compare_digest(got, self.expected or b"")

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        path = scope["path"]
        parts = path.split("/", 4)
        model = parts[3] if len(parts) > 3 and parts[1:3] == ["v2", "models"] and parts[3] in self.names else ""
        self.metrics.requests.labels(model, str(status)).inc()
        rows = scope.get("edgeclf.rows")
        if path.endswith("/infer") and model:
            self.metrics.seconds.labels(model).observe(seconds)
        client = scope.get("client") or ("-", 0)
        try:
            sys.stdout.write(f'{client[0]}:{client[1]} "{scope["method"]} {path}" {status} '
                             f'{"-" if rows is None else rows} rows {seconds * 1000:.2f} ms\n')
        except (OSError, ValueError):  # stdout closed (`edgeclf serve | head` ended): keep serving, unlogged
            pass


async def _unauthorized(send: Send) -> None:
    body = json.dumps({"error": "missing or wrong bearer token: send the header 'Authorization: Bearer <token>' "
                                "with the token of the server's --token-file"}).encode()
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b"Bearer")]})
    await send({"type": "http.response.body", "body": body})
