"""`edgeclf serve`: the checks before binding, the socket, and uvicorn run until SIGTERM/SIGINT.

Stack: uvicorn (httptools parser, uvloop event loop) + Starlette + prometheus-client. uvicorn with those two
C-accelerated parts is the fastest maintained Python HTTP server we could pick from PyPI's mainstream, and it
shuts down gracefully on SIGTERM (stop accepting, finish the requests in flight); Starlette routes the light
requests (health, metadata, metrics); both underlie FastAPI, so they are widely used and kept up to date. The hot
route, infer, bypasses Starlette (edgeclf.serve.infer) and uses orjson; serve/connection.py trims uvicorn's writes.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Awaitable, Callable

import uvicorn

import edgeclf.serve as defaults  # the DEFAULT_* settings, shared with the CLI
from edgeclf.runtime.errors import InputError
from edgeclf.serve.app import build_app
from edgeclf.serve.connection import Connection
from edgeclf.serve.front import Front
from edgeclf.serve.infer import Infer
from edgeclf.serve.metrics import Metrics
from edgeclf.serve.models import Models, Settings

GRACE_SECONDS = 30  # how long SIGTERM waits for requests in flight before cutting them off


@dataclass(frozen=True)
class ServeOptions:
    host: str = defaults.DEFAULT_HOST
    port: int = defaults.DEFAULT_PORT
    max_batch_rows: int = defaults.DEFAULT_MAX_BATCH_ROWS
    max_delay_ms: float = 0.0
    max_queue: int = defaults.DEFAULT_MAX_QUEUE
    max_body_mb: float = defaults.DEFAULT_MAX_BODY_MB
    token_file: str | None = None
    idle_timeout: int = defaults.DEFAULT_IDLE_TIMEOUT
    grpc_port: int | None = None  # None: no gRPC API


def read_token(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        token = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read --token-file {path}: {getattr(e, 'strerror', None) or e}") from None
    if not token or any(c.isspace() for c in token):
        raise InputError(f"--token-file {path} must hold one token (no spaces), got "
                         f"{'an empty file' if not token else 'whitespace inside it'}")
    return token


def is_loopback(host: str) -> bool:
    """Whether every address host resolves to is a loopback one."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as e:
        raise InputError(f"--host {host!r} does not resolve: {e.strerror}") from None
    return all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def bind(host: str, port: int, option: str = "--port") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror}; choose another {option}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(folders: list[str], opts: ServeOptions) -> None:
    """Load the models, bind, and serve until SIGTERM/SIGINT (then finish the requests in flight and return)."""
    token = read_token(opts.token_file)
    if token is None and not is_loopback(opts.host):
        raise InputError(f"refusing to listen on {opts.host} without --token-file: a non-loopback address needs a "
                         "bearer token (or use --host 127.0.0.1)")
    metrics = Metrics()
    settings = Settings(opts.max_batch_rows, opts.max_delay_ms / 1000, opts.max_queue)
    models = Models.open(folders, settings, lambda name, rows: metrics.batch_rows.labels(name).observe(rows))
    front = Front(build_app(models, metrics), Infer(models, int(opts.max_body_mb * 1024 * 1024)),  # type: ignore[arg-type]
                  metrics, set(models.folders), token)
    try:
        sock = bind(opts.host, opts.port)
        grpc_port = None if opts.grpc_port is None else probe(opts.host, opts.grpc_port)
    except InputError:
        models.close()  # no event loop runs yet: nothing is pending
        raise
    banner = _banner(models, opts, sock.getsockname()[1], grpc_port)
    config = uvicorn.Config(front, loop="uvloop", http=Connection, lifespan="on", log_config=None, access_log=False,
                            timeout_graceful_shutdown=GRACE_SECONDS, server_header=False, date_header=False,
                            timeout_keep_alive=opts.idle_timeout,
                            proxy_headers=False)  # the access log names the TCP peer; no header scan per request
    rpc = None if grpc_port is None else _grpc_starter(models, front, token, opts, grpc_port)
    _Server(config, banner, rpc).run(sockets=[sock])
    sys.stdout.flush()


def _banner(models: Models, opts: ServeOptions, port: int, grpc_port: int | None) -> str:
    """The startup line (on stderr once every listener is bound): the models, the addresses, the batching."""
    names = ", ".join(f"{n}@{m.version[:12]}" for n, m in models.current.items())
    grpc_text = "" if grpc_port is None else f" and gRPC {opts.host}:{grpc_port}"
    return (f"edgeclf serve: {names} on http://{opts.host}:{port}{grpc_text} (max batch {opts.max_batch_rows} "
            f"rows, max delay {opts.max_delay_ms:g} ms)")


def probe(host: str, port: int) -> int:
    """The gRPC port, checked free by binding it once (0: a free one chosen): a taken port is then our one-line
    error; grpc binds it itself right after."""
    sock = bind(host, port, "--grpc-port")
    chosen = int(sock.getsockname()[1])
    sock.close()
    return chosen


def _grpc_starter(models: Models, front: Front, token: str | None, opts: ServeOptions,
                  port: int) -> Callable[[], Awaitable[Any]]:
    from edgeclf.serve import rpc  # grpcio is needed only with --grpc-port

    limit = int(opts.max_body_mb * 1024 * 1024)
    service = rpc.Service(models, front, token, limit)
    return lambda: rpc.start(service, opts.host, port, limit)


class _Server(uvicorn.Server):
    """uvicorn's Server, plus the gRPC server on the same event loop (the batchers hand their results to the loop
    that submitted the job, so both APIs must run on one loop), started before the banner line and stopped first on
    SIGTERM/SIGINT: its calls in flight finish while the models are still open. A signal that ended a graceful
    shutdown is not raised again after it (uvicorn re-raises it, so the process would die of the signal instead of
    exiting 0)."""

    def __init__(self, config: uvicorn.Config, banner: str, start_rpc: Callable[[], Awaitable[Any]] | None) -> None:
        super().__init__(config)
        self.banner, self.start_rpc, self.rpc = banner, start_rpc, None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        if self.start_rpc is not None:
            self.rpc = await self.start_rpc()
        print(self.banner, file=sys.stderr, flush=True)
        try:
            await super().serve(sockets)
        finally:
            await self._stop_rpc()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self._stop_rpc()  # before the HTTP side: uvicorn's shutdown ends by closing the models
        await super().shutdown(sockets)

    async def _stop_rpc(self) -> None:
        rpc, self.rpc = self.rpc, None
        if rpc is not None:
            await rpc.stop(GRACE_SECONDS)  # refuses new calls at once, waits for those in flight

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()
