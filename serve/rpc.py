"""The Open Inference Protocol's gRPC API (`edgeclf serve --grpc-port`): the health, metadata and ModelInfer calls
of the `inference.GRPCInferenceService`, on the HTTP server's event loop and through the same batchers.

A ModelInferRequest is rewritten into the HTTP API's form (its raw_input_contents as the binary tail, its typed
contents as "data") and checked by edgeclf.serve.protocol, so both APIs accept the same requests and answer the same
messages; HTTP statuses map to gRPC codes (CODES). Outputs go back in raw_output_contents, as Triton sends them.
The messages and the service come from tritonclient.grpc (Triton's proto, a superset of KServe's
grpc_predict_v2.proto with the same package and field numbers): nothing to generate or keep in step here.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from importlib import metadata
from typing import Any, Awaitable, Callable, TypeVar

# grpc's C core logs to stderr by itself (e.g. a port it cannot bind); the server says its errors in one line
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc  # noqa: E402
from tritonclient.grpc import service_pb2 as pb  # noqa: E402
from tritonclient.grpc import service_pb2_grpc as pb_grpc  # noqa: E402

from edgeclf.runtime.errors import InputError, first_line  # noqa: E402
from edgeclf.serve.app import model_metadata  # noqa: E402
from edgeclf.serve.front import UNAUTHORIZED, Front, Scope, authorized, expected_header  # noqa: E402
from edgeclf.serve.infer import acquire, checked_rows, described, submit, too_large  # noqa: E402
from edgeclf.serve.models import Loaded, Models  # noqa: E402
from edgeclf.serve.protocol import (  # noqa: E402
    DTYPES,
    InferRequest,
    ProtocolError,
    bad,
    datatype_of,
    parse_head,
    tensor_bytes,
)

T = TypeVar("T")
RECEIVE_FACTOR = 4  # see start()
C_INT_MAX = 2**31 - 1  # grpc's channel arguments are C ints: 4 x --max-body-mb is capped there (2 GiB)
CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED, 404: grpc.StatusCode.NOT_FOUND,
         413: grpc.StatusCode.RESOURCE_EXHAUSTED, 503: grpc.StatusCode.RESOURCE_EXHAUSTED}
# the InferTensorContents field of each datatype (FP16 has none: raw_input_contents only)
TYPED = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT8": "int_contents", "INT16": "int_contents",
         "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
         "UINT32": "uint_contents", "UINT64": "uint64_contents"}


def as_head(request: Any) -> tuple[dict[str, Any], memoryview]:
    """A ModelInferRequest as the HTTP API's JSON object and binary tail."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise bad(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs: expected one per input")
    inputs = []
    for i, tensor in enumerate(request.inputs):
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        if raw:
            if tensor.HasField("contents"):
                raise bad(f"input {tensor.name!r} has both contents and raw_input_contents: send one of them")
            entry["parameters"] = {"binary_data_size": len(raw[i])}
        elif tensor.datatype in TYPED:
            entry["data"] = list(getattr(tensor.contents, TYPED[tensor.datatype]))
        elif tensor.datatype in DTYPES:
            raise bad(f"input datatype {tensor.datatype} has no typed contents: send it in raw_input_contents")
        inputs.append(entry)
    head: dict[str, Any] = {"inputs": inputs}
    if request.outputs:
        head["outputs"] = [{"name": o.name} for o in request.outputs]
    if request.id:
        head["id"] = request.id
    return head, memoryview(raw[0] if len(raw) == 1 else b"".join(raw))


def as_response(loaded: Loaded, req: InferRequest, values: dict[str, Any]) -> Any:
    """The ModelInferResponse: every output's bytes in raw_output_contents (the binary extension's layout)."""
    response = pb.ModelInferResponse(model_name=loaded.name, model_version=loaded.version, id=req.id or "")
    for name, _ in req.outputs:
        arr = values[name]
        response.outputs.add(name=name, datatype=datatype_of(name, arr), shape=arr.shape)
        response.raw_output_contents.append(tensor_bytes(name, arr))
    return response


def metadata_response(loaded: Loaded) -> Any:
    about = model_metadata(loaded)  # the HTTP answer's fields (the gRPC message has no "parameters")
    response = pb.ModelMetadataResponse(name=about["name"], versions=about["versions"], platform=about["platform"])
    for kind in ("inputs", "outputs"):
        for t in about[kind]:
            getattr(response, kind).add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
    return response


def peer(context: Any) -> tuple[str, str]:
    """(address, port) of gRPC's peer string, e.g. "ipv4:127.0.0.1:5000", for the access log."""
    address, _, port = str(context.peer()).partition(":")[2].rpartition(":")
    return address or "-", port


class Service(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """The calls served; the others (streaming, model repository, statistics, shared memory...) answer
    UNIMPLEMENTED from the generated base class."""

    def __init__(self, models: Models, front: Front, token: str | None, max_message: int) -> None:
        self.models, self.front, self.max_message = models, front, max_message
        self.expected = expected_header(token)
        self.server = {"name": "edgeclf", "version": metadata.version("edgeclf"), "extensions": []}

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return await self._call(context, "/v2/health/live", lambda scope: _done(pb.ServerLiveResponse(live=True)))

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return await self._call(context, "/v2/health/ready", lambda scope: _done(pb.ServerReadyResponse(ready=True)))

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return await self._call(context, "/v2", lambda scope: _done(pb.ServerMetadataResponse(**self.server)))

    async def ModelReady(self, request: Any, context: Any) -> Any:
        async def ready(scope: Scope) -> Any:
            self._about(request)
            return pb.ModelReadyResponse(ready=True)
        return await self._call(context, f"/v2/models/{request.name}/ready", ready)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        return await self._call(context, f"/v2/models/{request.name}",
                                lambda scope: _done(metadata_response(self._about(request))))

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        async def infer(scope: Scope) -> Any:
            if (size := request.ByteSize()) > self.max_message:
                raise too_large(self.max_message, size)
            loaded = acquire(self.models, request.model_name, request.model_version or None)
            try:
                clf = loaded.clf
                req = parse_head(*as_head(request), clf.manifest.signature.input, clf.n_features_in_)
                rows = checked_rows(loaded, req)
                scope["edgeclf.rows"] = len(rows)
                return as_response(loaded, req, await submit(loaded, rows, req))
            finally:
                loaded.release()
        return await self._call(context, f"/v2/models/{request.model_name}/infer", infer)

    def _about(self, request: Any) -> Loaded:
        return described(self.models, request.name, request.version or None)

    async def _call(self, context: Any, path: str, work: Callable[[Scope], Awaitable[T]]) -> T:
        """work() behind the token, its errors as gRPC codes, recorded as Front records an HTTP request. The record
        is made before the answer leaves (abort() yields to the loop while the status goes out, so a client could
        read /metrics before a record made after it)."""
        scope: Scope = {"method": "GRPC", "path": path, "client": peer(context)}
        start = time.perf_counter()

        def record(status: int) -> None:
            self.front.record(scope, status, time.perf_counter() - start)

        try:
            if not authorized(path, _metadata(context, "authorization"), self.expected):
                raise ProtocolError(401, UNAUTHORIZED)
            answer = await work(scope)
        except ProtocolError as e:
            record(e.status)
            await context.abort(CODES.get(e.status, grpc.StatusCode.UNKNOWN), str(e))
            raise  # abort() raised already
        except asyncio.CancelledError:  # the client went away
            record(499)
            raise
        except Exception as e:
            record(500)
            print(f"edgeclf serve: error on gRPC {path}: {first_line(e)}", file=sys.stderr)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {first_line(e)}")
            raise
        record(200)
        return answer


def _metadata(context: Any, key: str) -> str | bytes:
    return next((v for k, v in context.invocation_metadata() or () if k == key), "")


async def _done(value: T) -> T:
    return value


async def start(service: Service, host: str, port: int, max_message: int) -> Any:
    """A grpc.aio server for service on host:port (already probed free), started on the running event loop.
    grpc takes messages up to RECEIVE_FACTOR times --max-body-mb, so that ModelInfer refuses one over the limit
    itself (the HTTP API's 413 message, counted and logged); grpc refuses a larger one before any handler runs,
    in its own words ("Received message larger than max"), and it is neither counted nor logged. The factor bounds
    the memory a message may take before it is refused; grpc's C int caps it at 2 GiB (--max-body-mb 512 and up)."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0),
                                      ("grpc.max_receive_message_length", min(RECEIVE_FACTOR * max_message, C_INT_MAX)),
                                      ("grpc.max_send_message_length", -1)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(service, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError:
        raise InputError(f"cannot listen on {address} for gRPC: the port was taken; choose another --grpc-port") \
            from None
    await server.start()
    return server
