"""The Open Inference Protocol's (KServe v2) infer request and response, with the binary tensor data extension.

A request body is a JSON object, optionally followed by raw tensor bytes: the `Inference-Header-Content-Length`
header gives the JSON part's length, and each input with a `binary_data_size` parameter takes that many bytes of
the rest, in input order (little-endian, row-major). A response puts an output's bytes after its JSON the same
way when the request asked for it (`binary_data` on the output, or `binary_data_output` on the request); a BYTES
element is a 4-byte little-endian length and then its bytes. tritonclient.http sends and asks binary by default.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import orjson

HEADER_LENGTH = "inference-header-content-length"
OUTPUTS = ("probabilities", "logits", "label")
# the numeric types a request may send (converted to float32 as the runtime converts arrays); FP16 as a bonus
DTYPES: dict[str, np.dtype[Any]] = {
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "INT8": np.dtype("i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
}


class ProtocolError(Exception):
    """A request the server answers with an HTTP error: `status` and the `{"error": message}` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def bad(message: str) -> ProtocolError:
    return ProtocolError(400, message)


@dataclass(frozen=True)
class InferRequest:
    """One decoded infer request: its rows (not yet checked by the runtime) and the outputs to send back."""

    id: str | None
    rows: np.ndarray  # (N, F) or (F,) as sent, any numeric dtype
    outputs: tuple[tuple[str, bool], ...]  # (name, as binary) in the order asked


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """A body sent with Content-Encoding gzip or deflate (tritonclient's request_compression_algorithm), inflated to
    at most `limit` bytes: the size limit holds for what the server would have to hold, not for what was sent."""
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise bad(f"Content-Encoding {encoding!r} is not supported: expected gzip, deflate or none")
    inflater = zlib.decompressobj(31 if encoding == "gzip" else 15)  # 31: gzip header; 15: zlib (HTTP's deflate)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as e:
        raise bad(f"the body is not valid {encoding} data ({e})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ProtocolError(413, f"the {encoding} body inflates to over this server's limit of {limit} bytes "
                                 "(--max-body-mb): split the rows over several requests")
    return out


def loads(text: bytes) -> Any:
    """orjson's parse; what it refuses goes through the standard library's, so that what is accepted and the error
    messages stay the standard parser's: NaN and Infinity (the runtime then names the row), UTF-16/32 bodies."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def split_body(body: bytes, header_length: str | None) -> tuple[Any, memoryview]:
    """The JSON object and the binary tail of a body."""
    cut = len(body)
    if header_length is not None:
        try:
            cut = int(header_length)
        except ValueError:
            raise bad(f"Inference-Header-Content-Length {header_length!r} is not an integer") from None
        if not 0 <= cut <= len(body):
            raise bad(f"Inference-Header-Content-Length {cut} is outside the body's {len(body)} bytes")
    try:
        head = loads(body if cut == len(body) else body[:cut])
    except (ValueError, RecursionError) as e:  # RecursionError: nested deeper than the parser goes
        raise bad(f"request body is not JSON ({e}): expected an Open Inference Protocol infer request") from None
    if not isinstance(head, dict):
        raise bad(f"request JSON is a {type(head).__name__}: expected an object with \"inputs\"")
    return head, memoryview(body)[cut:]


def parse_request(body: bytes, header_length: str | None, input_name: str, n_features: int) -> InferRequest:
    head, tail = split_body(body, header_length)
    return parse_head(head, tail, input_name, n_features)


def parse_head(head: dict[str, Any], tail: memoryview, input_name: str, n_features: int) -> InferRequest:
    """A request's JSON object and binary tail, checked; the gRPC API (edgeclf.serve.rpc) writes its requests in
    this form, so both APIs accept the same requests and answer the same messages."""
    inputs = head.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise bad(f"\"inputs\" must be a list of one tensor named {input_name!r} (shape [N, {n_features}])")
    tensor = inputs[0]
    if tensor.get("name") != input_name:
        raise bad(f"input named {tensor.get('name')!r}: expected {input_name!r}")
    rows, used = _tensor(tensor, tail)
    if used != len(tail):
        raise bad(f"the body has {len(tail)} bytes after the JSON header, the inputs' binary_data_size take {used}")
    request_id = head.get("id")
    return InferRequest(None if request_id is None else str(request_id), rows, _outputs(head))


def _tensor(tensor: dict[str, Any], tail: memoryview) -> tuple[np.ndarray, int]:
    """The input's array (shape as declared) and how many binary bytes it took."""
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    dtype = DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise bad(f"input datatype {datatype!r}: expected one of {', '.join(DTYPES)}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise bad(f"input shape {shape!r}: expected a list of non-negative integers, e.g. [N, F]")
    count = math.prod(shape)
    size = _parameters(tensor, "input").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size != count * dtype.itemsize or size > len(tail):
            raise bad(f"binary_data_size {size!r} for shape {shape} {datatype}: expected {count * dtype.itemsize} "
                      f"bytes, and the body has {len(tail)} after the JSON header")
        return np.frombuffer(tail[:size], dtype).reshape(shape), size
    if "data" not in tensor:
        raise bad("input has neither \"data\" nor a binary_data_size parameter")
    return _json_data(tensor["data"], dtype, str(datatype), shape, count), 0


def _kind_of(data: Any) -> str:
    """What a JSON array holds that is not numbers, in JSON's words (not numpy's dtype codes)."""
    flat, todo = [], [data]
    while todo:  # nested lists, flattened without recursion
        v = todo.pop()
        if isinstance(v, list):
            todo.extend(reversed(v))
        else:
            flat.append(v)
    if any(v is None for v in flat):
        return "null"
    text = next((v for v in flat if isinstance(v, str)), None)
    if text is not None:
        return f"text ({text[:40]!r})"
    if any(isinstance(v, bool) for v in flat):
        return "true/false"
    if all(isinstance(v, (int, float)) for v in flat):
        return "numbers with a fraction"  # for an integer datatype
    return "values that are not numbers"


def _json_data(data: Any, dtype: np.dtype[Any], datatype: str, shape: list[int], count: int) -> np.ndarray:
    try:
        arr = np.asarray(data)
    except ValueError:
        raise bad(f"input data is not a rectangular array of numbers: expected {count} {datatype} values") from None
    if arr.size == 0 and arr.dtype.kind == "f":  # [] reads as float64: no value to be of the wrong kind
        arr = arr.astype(dtype)
    whole = dtype.kind in "iu" and arr.dtype.kind in "fO" and _integral(arr)
    if whole:  # whole numbers read as floats or as Python ints beyond 64 bits (or written 3.0): exact ints
        arr = np.array([int(v) for v in arr.ravel().tolist()], dtype=object)
    if not whole and arr.dtype.kind not in ("iuf" if dtype.kind == "f" else "iu"):
        want = "numbers" if dtype.kind == "f" else "integers"
        raise bad(f"input data holds {_kind_of(data)} for datatype {datatype}: expected {want}")
    if arr.size != count:
        raise bad(f"input data has {arr.size} values, shape {shape} needs {count}")
    if dtype.kind in "iu" and arr.size:
        info = np.iinfo(dtype)  # exact: numpy ints, or Python ints (object) for whole numbers read otherwise
        if arr.min() < info.min or arr.max() > info.max:
            raise bad(f"input data holds a value outside {datatype}'s range [{info.min}, {info.max}]")
        arr = arr.astype(dtype)
    # JSON numbers are float64 whatever the datatype: the runtime checks they fit float32 and casts them once
    return arr.reshape(shape)


def _integral(arr: np.ndarray) -> bool:
    """Whether every value is a whole number (Python ints of any size, or finite floats without a fraction)."""
    values = arr.ravel().tolist()
    return all(isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()
               for v in values)


def _parameters(obj: dict[str, Any], what: str) -> dict[str, Any]:
    params = obj.get("parameters") or {}
    if not isinstance(params, dict):
        raise bad(f"{what} \"parameters\" is a {type(params).__name__}: expected an object")
    return params


def _outputs(head: dict[str, Any]) -> tuple[tuple[str, bool], ...]:
    binary_default = bool(_parameters(head, "request").get("binary_data_output", False))
    asked = head.get("outputs")
    if asked is None:
        return tuple((name, binary_default) for name in OUTPUTS)
    if not isinstance(asked, list) or not all(isinstance(o, dict) for o in asked):
        raise bad("\"outputs\" must be a list of objects like {\"name\": \"probabilities\"}")
    chosen = []
    for o in asked:
        if o.get("name") not in OUTPUTS:
            raise bad(f"output {o.get('name')!r}: expected one of {', '.join(OUTPUTS)}")
        binary = _parameters(o, f"output {o['name']!r}").get("binary_data", binary_default)
        chosen.append((str(o["name"]), bool(binary)))
    return tuple(chosen)


def encode_response(model: str, version: str, request: InferRequest,
                    values: dict[str, np.ndarray]) -> tuple[bytes, int | None]:
    """The response body and, when some output is binary, the JSON part's length for the header."""
    outputs, blobs = [], []
    for name, binary in request.outputs:
        arr = values[name]
        entry: dict[str, Any] = {"name": name, "datatype": datatype_of(name, arr), "shape": list(arr.shape)}
        if binary:
            blob = tensor_bytes(name, arr)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = arr.ravel().tolist()  # float32 -> Python float is exact: the JSON round-trips the bits
        outputs.append(entry)
    head: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": outputs}
    if request.id is not None:
        head["id"] = request.id
    text = orjson.dumps(head)  # floats as their shortest repr, as json.dumps writes them: the same values
    return (text + b"".join(blobs), len(text)) if blobs else (text, None)


def datatype_of(name: str, arr: np.ndarray) -> str:
    """FP32 for the probabilities and logits; the label: BYTES class names, or BOOL (N, L) for a multi-label model."""
    if name != "label":
        return "FP32"
    return "BOOL" if arr.dtype == np.bool_ else "BYTES"


def tensor_bytes(name: str, arr: np.ndarray) -> bytes:
    """An output's raw bytes: the binary extension's, and gRPC's raw_output_contents (the same layout)."""
    if name != "label":
        return np.ascontiguousarray(arr, "<f4").tobytes()
    if arr.dtype == np.bool_:
        return np.ascontiguousarray(arr, np.uint8).tobytes()  # the binary extension's BOOL: one byte per element
    return encode_bytes(arr)


def encode_bytes(values: Sequence[str] | np.ndarray) -> bytes:
    """A BYTES tensor's binary form: each element as a 4-byte little-endian length and its UTF-8 bytes."""
    parts = []
    for v in values:
        b = str(v).encode()
        parts.append(struct.pack("<I", len(b)) + b)
    return b"".join(parts)
