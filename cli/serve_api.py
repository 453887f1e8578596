"""`edgeclf serve`: artifact folders behind the Open Inference Protocol (KServe v2), with dynamic batching.

The server's packages (the serve extra) are imported inside the command: `edgeclf --help` never loads them.
"""

from __future__ import annotations

import click

import edgeclf.serve as defaults  # the DEFAULT_* settings (light: no server package imported)

SERVE_NEEDS = ("uvicorn", "starlette", "prometheus_client", "httptools", "uvloop", "orjson")
GRPC_NEEDS = ("grpc", "tritonclient")  # --grpc-port: grpcio, and the service's messages from tritonclient.grpc


@click.command()
@click.argument("artifacts", nargs=-1, required=True, metavar="ARTIFACT...",
                type=click.Path(exists=True, file_okay=False))
@click.option("--host", default=defaults.DEFAULT_HOST, show_default=True,
              help="Address to listen on; any non-loopback one needs --token-file.")
@click.option("--port", type=click.IntRange(0, 65535), default=defaults.DEFAULT_PORT, show_default=True,
              help="0: any free port.")
@click.option("--max-batch-rows", type=click.IntRange(min=1), default=defaults.DEFAULT_MAX_BATCH_ROWS, show_default=True,
              help="Rows per coalesced Classifier call; 1 turns batching off.")
@click.option("--max-delay-ms", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="How long a request may wait for others to join its batch (0: take what is queued).")
@click.option("--max-queue", type=click.IntRange(min=1), default=defaults.DEFAULT_MAX_QUEUE, show_default=True,
              help="Requests waiting per model before the server answers 503 (Retry-After).")
@click.option("--max-body-mb", type=click.FloatRange(min=0, min_open=True), default=defaults.DEFAULT_MAX_BODY_MB,
              show_default=True, help="Largest request body in MiB; a larger one gets 413.")
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="File holding the bearer token every request must send (Authorization: Bearer ...).")
@click.option("--idle-timeout", type=click.IntRange(min=1), default=defaults.DEFAULT_IDLE_TIMEOUT, show_default=True,
              help="Seconds a connection may stay silent (before its first request or between two) before it is "
                   "closed.")
@click.option("--grpc-port", type=click.IntRange(0, 65535), default=None,
              help="Also serve the protocol's gRPC API on this port (same --host and token; 0: any free port). "
                   "Off by default.")
def serve(artifacts: tuple[str, ...], host: str, port: int, max_batch_rows: int, max_delay_ms: float,
          max_queue: int, max_body_mb: float, token_file: str | None, idle_timeout: int, grpc_port: int | None) -> None:
    """Serve ARTIFACT folders over the Open Inference Protocol (KServe v2 REST, and gRPC with --grpc-port), e.g. to
    tritonclient.

    Each folder is a model named by the folder, versioned by its weights' hash; a folder replaced by
    `edgeclf export` is picked up without a restart. SIGTERM or Ctrl-C finishes the requests in flight.

    \b
    Example:
      edgeclf serve artifacts/circles artifacts/iris --port 8000
      curl -s localhost:8000/v2/models/circles/infer -d '{"inputs": [{"name": "input", "shape": [1, 2],
           "datatype": "FP32", "data": [0.1, 0.2]}]}'
    """
    from edgeclf.cli.main import needs_extra

    needs_extra(*SERVE_NEEDS, *(GRPC_NEEDS if grpc_port is not None else ()), extra="serve")
    from edgeclf.serve.server import ServeOptions
    from edgeclf.serve.server import serve as run

    run(list(artifacts), ServeOptions(host, port, max_batch_rows, max_delay_ms, max_queue, max_body_mb, token_file,
                                      idle_timeout, grpc_port))
