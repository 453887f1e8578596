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

import uvicorn

from edgeclf.runtime.errors import InputError
from edgeclf.serve import (
    DEFAULT_HOST,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BATCH_ROWS,
    DEFAULT_MAX_BODY_MB,
    DEFAULT_MAX_QUEUE,
    DEFAULT_PORT,
)
from edgeclf.serve.app import build_app
from edgeclf.serve.connection import Connection
from edgeclf.serve.front import Front
from edgeclf.serve.infer import Infer
from edgeclf.serve.metrics import Metrics
from edgeclf.serve.models import Models, Settings

GRACE_SECONDS = 30  # how long SIGTERM waits for requests in flight before cutting them off


@dataclass(frozen=True)
class ServeOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS
    max_delay_ms: float = 0.0
    max_queue: int = DEFAULT_MAX_QUEUE
    max_body_mb: float = DEFAULT_MAX_BODY_MB
    token_file: str | None = None
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT


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


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror}; choose another --port") from None
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
    app = Front(build_app(models, metrics), Infer(models, int(opts.max_body_mb * 1024 * 1024)),  # type: ignore[arg-type]
                metrics, set(models.folders), token)
    try:
        sock = bind(opts.host, opts.port)
    except InputError:
        models.close()  # no event loop runs yet: nothing is pending
        raise
    port = sock.getsockname()[1]
    names = ", ".join(f"{n}@{m.version[:12]}" for n, m in models.current.items())
    print(f"edgeclf serve: {names} on http://{opts.host}:{port} (max batch {opts.max_batch_rows} rows, "
          f"max delay {opts.max_delay_ms:g} ms)", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, loop="uvloop", http=Connection, lifespan="on", log_config=None, access_log=False,
                            timeout_graceful_shutdown=GRACE_SECONDS, server_header=False, date_header=False,
                            timeout_keep_alive=opts.idle_timeout,
                            proxy_headers=False)  # the access log names the TCP peer; no header scan per request
    _Server(config).run(sockets=[sock])
    sys.stdout.flush()


class _Server(uvicorn.Server):
    """uvicorn's Server, except that a SIGTERM/SIGINT that ended a graceful shutdown is not raised again after
    it (uvicorn re-raises it, so the process would die of the signal instead of exiting 0)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()

