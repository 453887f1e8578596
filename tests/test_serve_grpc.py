"""`edgeclf serve --grpc-port` as a real server process: tritonclient.grpc (raw_input_contents) and hand-built
requests with typed contents answered bit-identically to the Classifier, concurrent clients coalesced by the
batcher, metadata, the error codes (with the HTTP API's messages, asked of the same server over HTTP), the token,
overload, the message size limit and SIGTERM with a call in flight."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from helpers import ARTIFACTS, assert_clean_error, run_cli, skip_or_fail
from test_serve import (
    Server,
    _clf,
    _metric,
    _request,
    json_body,
    rows,
    same_as_classifier,
    served_nonfinite_message,
    shop_requests,
)

from edgeclf.runtime import Classifier

GRPC_MODULES = ("grpc", "tritonclient.grpc", "uvicorn", "starlette", "prometheus_client", "orjson")
OUTPUTS = ("probabilities", "logits", "label")


@pytest.fixture(scope="module", autouse=True)
def grpc_installed() -> None:
    for m in GRPC_MODULES:
        try:
            found = importlib.util.find_spec(m) is not None
        except ImportError:
            found = False
        if not found:  # CI installs the serve extra (grpcio, tritonclient): there, missing is a failure
            skip_or_fail(f"{m} is not installed: pip install 'edgeclf[serve,dev]'",
                         required=os.environ.get("CI") == "true")


def grpc_port(server: Server) -> int:
    match = re.search(r" and gRPC 127\.0\.0\.1:(\d+) ", server.err.read_text())
    assert match, server.err.read_text()
    return int(match.group(1))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    import shutil

    root = tmp_path_factory.mktemp("served")
    for t in ("circles", "iris", "machine_faults"):
        shutil.copytree(ARTIFACTS / t, root / t)
    return [root / "circles", root / "iris", root / "machine_faults"]


@pytest.fixture(scope="module")
def server(folders: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(folders, tmp_path_factory.mktemp("logs"), "--grpc-port", "0", "--max-body-mb", "1")
    s.grpc = grpc_port(s)  # type: ignore[attr-defined]
    yield s
    assert s.stop() == 0
    assert s.err.read_text().count("\n") == 1, s.err.read_text()  # the banner alone: no grpc log, no warning


def client(server: Server) -> Any:
    import tritonclient.grpc as tg

    return tg.InferenceServerClient(f"127.0.0.1:{server.grpc}")  # type: ignore[attr-defined]


def triton_infer(c: Any, model: str, x: np.ndarray, outputs: tuple[str, ...] = OUTPUTS, **kw: Any) -> Any:
    import tritonclient.grpc as tg

    inp = tg.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)  # sent in raw_input_contents
    return c.infer(model, [inp], outputs=[tg.InferRequestedOutput(n) for n in outputs], **kw)


def outputs_of(result: Any) -> dict[str, np.ndarray]:
    out = {n: result.as_numpy(n) for n in OUTPUTS}
    out["label"] = np.array([b.decode() for b in out["label"]], object)
    return out


def stub(server: Server) -> Any:
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc}")  # type: ignore[attr-defined]
    return service_pb2_grpc.GRPCInferenceServiceStub(channel)


def typed_request(model: str, x: np.ndarray, datatype: str, field: str, name: str = "input") -> Any:
    """A ModelInferRequest with the input in the typed contents field (tritonclient always sends raw bytes)."""
    from tritonclient.grpc import service_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=name, datatype=datatype, shape=x.shape)
    getattr(tensor.contents, field).extend(x.ravel().tolist())
    return request


def raw_outputs(response: Any) -> dict[str, np.ndarray]:
    """The response's raw_output_contents decoded here from the protocol's layout (BYTES: 4-byte LE length + text)."""
    out: dict[str, np.ndarray] = {}
    for meta, raw in zip(response.outputs, response.raw_output_contents):
        if meta.datatype == "BYTES":
            items, i = [], 0
            while i < len(raw):
                n = int.from_bytes(raw[i:i + 4], "little")
                items.append(raw[i + 4:i + 4 + n].decode())
                i += 4 + n
            out[meta.name] = np.array(items, object)
        else:
            out[meta.name] = np.frombuffer(raw, "<f4").reshape(tuple(meta.shape))
    return out


# ---------------------------------------------------------------- answers


@pytest.mark.parametrize("task", ["circles", "iris"])
def test_tritonclient_grpc_equals_classifier(server: Server, task: str) -> None:
    x = rows(task, 37, seed=1)
    result = triton_infer(client(server), task, x, request_id="r-7")
    assert same_as_classifier(_clf(task), x, outputs_of(result))
    response = result.get_response()
    assert response.model_version == _clf(task).manifest.origin.state_dict_sha256 and response.id == "r-7"
    only = triton_infer(client(server), task, x, ("label",)).get_response()
    assert [o.name for o in only.outputs] == ["label"] and len(only.raw_output_contents) == 1


@pytest.mark.parametrize(("datatype", "field", "dtype"), [("FP32", "fp32_contents", np.float32),
                                                          ("FP64", "fp64_contents", np.float64),
                                                          ("INT32", "int_contents", np.int32),
                                                          ("INT64", "int64_contents", np.int64)])
def test_typed_contents_equal_classifier(server: Server, datatype: str, field: str, dtype: Any) -> None:
    x = (rows("iris", 9, seed=2) * (10 if dtype in (np.int32, np.int64) else 1)).astype(dtype)
    response = stub(server).ModelInfer(typed_request("iris", x, datatype, field), timeout=30)
    assert same_as_classifier(_clf("iris"), x, raw_outputs(response))  # the Classifier converts x as it does


def test_multilabel_label_is_bool(server: Server) -> None:
    clf = _clf("machine_faults")  # multi-label: label is one true/false per label, (N, L)
    x = rows("machine_faults", 11, seed=8)
    result = triton_infer(client(server), "machine_faults", x)
    label = result.as_numpy("label")
    assert label.dtype == np.bool_ and np.array_equal(label, clf.predict(x))
    assert np.array_equal(result.as_numpy("probabilities"), clf.predict_proba(x))


def test_concurrent_clients_are_coalesced(server: Server) -> None:
    clf, before = _clf("circles"), _metric(server.port, "edgeclf_batch_rows_count", model="circles")

    def work(seed: int) -> bool:
        c = client(server)
        return all(same_as_classifier(clf, x, outputs_of(triton_infer(c, "circles", x)))
                   for x in (rows("circles", 1 + (seed + i) % 3, seed * 100 + i) for i in range(12)))

    with ThreadPoolExecutor(32) as pool:
        assert all(pool.map(work, range(32)))
    calls = _metric(server.port, "edgeclf_batch_rows_count", model="circles") - before
    print(f"gRPC: 384 requests from 32 clients in {calls:.0f} Classifier calls")
    assert 0 < calls < 384


# ---------------------------------------------------------------- metadata


def test_health_and_metadata(server: Server) -> None:
    c = client(server)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("iris")
    about = c.get_server_metadata()
    assert about.name == "edgeclf" and about.version
    meta = c.get_model_metadata("iris")
    http = json.loads(_request(server.port, "GET", "/v2/models/iris")[2])
    assert meta.name == "iris" and list(meta.versions) == http["versions"] and meta.platform == http["platform"]
    for kind in ("inputs", "outputs"):
        assert [(t.name, t.datatype, list(t.shape)) for t in getattr(meta, kind)] == \
            [(t["name"], t["datatype"], t["shape"]) for t in http[kind]]
    assert c.get_model_metadata("iris", model_version=http["versions"][0]).name == "iris"


# ---------------------------------------------------------------- errors


def grpc_error(call: Any) -> tuple[str, str]:
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as e:
        call()
    return str(e.value.status()), str(e.value.message())


def test_unknown_model_or_version_is_not_found(server: Server) -> None:
    c = client(server)
    x = rows("circles", 1, seed=3)
    code, message = grpc_error(lambda: triton_infer(c, "nope", x))
    assert code == "StatusCode.NOT_FOUND"
    assert message == "unknown model 'nope': this server has circles, iris, machine_faults"
    code, message = grpc_error(lambda: triton_infer(c, "circles", x, model_version="0" * 64))
    assert code == "StatusCode.NOT_FOUND" and "is at version" in message
    assert grpc_error(lambda: c.get_model_metadata("nope"))[0] == "StatusCode.NOT_FOUND"
    assert grpc_error(lambda: c.is_model_ready("nope"))[0] == "StatusCode.NOT_FOUND"


def test_bad_requests_are_invalid_argument_with_the_http_message(server: Server) -> None:
    """Each bad request is sent over gRPC and, written the same way, over HTTP: same message."""
    bad = [(np.zeros((2, 3), np.float32), "FP32", "fp32_contents", "input"),  # 3 features, circles has 2
           (np.zeros((2, 2), np.float32), "FP32", "fp32_contents", "x"),  # wrong input name
           (np.array([[np.nan, 1.0]]), "FP64", "fp64_contents", "input"),  # non-finite
           (np.array([[300, 1]]), "INT8", "int_contents", "input"),  # out of INT8's range
           (np.array([[1e39, 1.0]]), "FP64", "fp64_contents", "input")]  # does not fit float32
    s = stub(server)
    for x, datatype, field, name in bad:
        import grpc

        with pytest.raises(grpc.RpcError) as e:
            s.ModelInfer(typed_request("circles", x, datatype, field, name), timeout=30)
        status, _, body = _request(server.port, "POST", "/v2/models/circles/infer",
                                   json_body(x, datatype, name))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and status == 400
        assert e.value.details() == json.loads(body)["error"], (datatype, name)


def test_raw_size_mismatch(server: Server) -> None:
    import grpc
    from tritonclient.grpc import service_pb2 as pb

    request = pb.ModelInferRequest(model_name="circles", raw_input_contents=[b"\0" * 12])
    request.inputs.add(name="input", datatype="FP32", shape=[2, 2])
    with pytest.raises(grpc.RpcError) as e:
        stub(server).ModelInfer(request, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "binary_data_size 12" in e.value.details()



def test_message_over_the_limit_is_the_http_413_counted_and_logged(server: Server) -> None:
    """A message over --max-body-mb 1 (but under the 4x grpc itself takes) is refused by the server with the HTTP
    API's 413 message, counted in edgeclf_requests_total and logged like any call."""
    big = rows("circles", 150_000, seed=4)  # 1.2 MB: over --max-body-mb 1
    before = _metric(server.port, "edgeclf_requests_total", model="circles", code="413")
    code, message = grpc_error(lambda: triton_infer(client(server), "circles", big))
    assert code == "StatusCode.RESOURCE_EXHAUSTED", message
    assert re.fullmatch(r"request body of 12000\d\d bytes is over this server's limit of 1048576 bytes "
                        r"\(--max-body-mb\): split the rows over several requests", message), message
    assert _metric(server.port, "edgeclf_requests_total", model="circles", code="413") - before == 1
    assert wait_for_log(server, '"GRPC /v2/models/circles/infer" 413 - rows')


def test_calls_are_counted_and_logged(server: Server) -> None:
    """Each gRPC call: one edgeclf_requests_total (the HTTP status it stands for), one access-log line."""
    c, x = client(server), rows("iris", 2, seed=40)
    before = {k: _metric(server.port, "edgeclf_requests_total", model="iris", code=k) for k in ("200", "400", "404")}
    seconds = _metric(server.port, "edgeclf_request_seconds_count", model="iris")
    for _ in range(3):
        triton_infer(c, "iris", x)
    assert grpc_error(lambda: triton_infer(c, "iris", x[:, :2]))[0] == "StatusCode.INVALID_ARGUMENT"
    assert grpc_error(lambda: triton_infer(c, "iris", x, model_version="7"))[0] == "StatusCode.NOT_FOUND"
    deltas = {k: _metric(server.port, "edgeclf_requests_total", model="iris", code=k) - v for k, v in before.items()}
    assert deltas == {"200": 3, "400": 1, "404": 1}
    assert _metric(server.port, "edgeclf_request_seconds_count", model="iris") - seconds == 5
    assert wait_for_log(server, '"GRPC /v2/models/iris/infer" 200 2 rows')
    assert wait_for_log(server, '"GRPC /v2/models/iris/infer" 400 - rows')


def wait_for_log(server: Server, text: str) -> bool:
    """Whether the access log (the server's stdout, line-buffered or not) shows text within 10 s."""
    deadline = time.monotonic() + 10
    while text not in server.out.read_text():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow  # category_root trains a model once per run (~30 s)
def test_a_bad_call_is_refused_alone_before_it_joins_a_batch(category_root: Path, tmp_path: Path) -> None:
    """As over HTTP (tests/test_serve.py): concurrent calls gathered by --max-delay-ms, those the model's own
    checks refuse get INVALID_ARGUMENT with the runtime's message naming their own row, the others exact answers."""
    clf = Classifier.load(category_root / "shop")
    xs, bad = shop_requests(clf)
    s = Server([category_root / "shop"], tmp_path, "--grpc-port", "0", "--max-delay-ms", "300")
    s.grpc = grpc_port(s)  # type: ignore[attr-defined]

    def call(x: np.ndarray) -> tuple[str, Any]:
        try:
            return "OK", outputs_of(triton_infer(client(s), "shop", x))
        except Exception as e:
            return str(e.status()), str(e.message())  # type: ignore[attr-defined]

    try:
        client(s).is_server_ready()  # tritonclient imported before the calls race
        with ThreadPoolExecutor(len(xs)) as pool:
            answers = list(pool.map(call, xs))
        batches = _metric(s.port, "edgeclf_batch_rows_count", model="shop")
    finally:
        assert s.stop() == 0
    for i, (x, (code, got)) in enumerate(zip(xs, answers)):
        if i in bad:
            expected = served_nonfinite_message(bad[i]) if i == 6 else bad[i]
            assert (code, got) == ("StatusCode.INVALID_ARGUMENT", expected), i
        else:
            assert code == "OK" and same_as_classifier(clf, x, got), (i, code, got)
    assert batches < len(xs) - len(bad)  # some good calls shared a Classifier call
    assert s.err.read_text().count("\n") == 1, s.err.read_text()


# ---------------------------------------------------------------- token, overload, SIGTERM, port


def test_token_and_overload(folders: list[Path], tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    s = Server(folders[:1], tmp_path, "--grpc-port", "0", "--token-file", str(token), "--max-queue", "1",
               "--max-batch-rows", "1")
    s.grpc = grpc_port(s)  # type: ignore[attr-defined]
    c, auth = client(s), {"authorization": "Bearer s3cret-token"}
    x = rows("circles", 3, seed=5)
    try:
        assert grpc_error(lambda: triton_infer(c, "circles", x))[0] == "StatusCode.UNAUTHENTICATED"
        code, message = grpc_error(lambda: c.get_model_metadata("circles", headers={"authorization": "Bearer no"}))
        assert code == "StatusCode.UNAUTHENTICATED" and "bearer token" in message
        assert c.is_server_live() and c.is_server_ready()  # probes carry no token, as over HTTP
        assert same_as_classifier(_clf("circles"), x, outputs_of(triton_infer(c, "circles", x, headers=auth)))
        _overload(s, auth)
    finally:
        assert s.stop() == 0
    assert s.err.read_text().count("\n") == 1, s.err.read_text()


def _overload(s: Server, auth: dict[str, str]) -> None:
    big = rows("circles", 60_000, seed=6)  # each takes milliseconds: the queue of 1 fills

    def one(_: int) -> str:
        try:
            result = triton_infer(client(s), "circles", big, ("probabilities",), headers=auth)
        except Exception as e:
            return str(e.status()) + " " + str(e.message())  # type: ignore[attr-defined]
        assert np.array_equal(result.as_numpy("probabilities"), _clf("circles").predict_proba(big))
        return "OK"

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, range(24)))
    print(f"gRPC overload: {answers.count('OK')} answered of 24")
    assert "OK" in answers and all(a == "OK" or a.startswith("StatusCode.RESOURCE_EXHAUSTED overloaded")
                                   for a in answers), set(answers)
    assert len(set(answers)) > 1


def test_sigterm_finishes_the_call_in_flight(folders: list[Path], tmp_path: Path) -> None:
    """A call waits 1.5 s in the batcher for others (--max-delay-ms) when SIGTERM comes: a new call is refused,
    the waiting one is answered in full, then the server exits 0."""
    s = Server(folders[:1], tmp_path, "--grpc-port", "0", "--max-delay-ms", "1500")
    s.grpc = grpc_port(s)  # type: ignore[attr-defined]
    x = rows("circles", 5, seed=7)
    got: dict[str, Any] = {}

    def call() -> None:
        start = time.monotonic()
        got["r"] = triton_infer(client(s), "circles", x)
        got["seconds"] = time.monotonic() - start

    sender = threading.Thread(target=call)
    sender.start()
    deadline = time.monotonic() + 20  # the client thread imports tritonclient first: wait until the call is queued
    while _metric(s.port, "edgeclf_queue_depth", model="circles") < 1:
        assert time.monotonic() < deadline and sender.is_alive(), "the call never reached the batcher"
        time.sleep(0.02)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    assert grpc_error(lambda: triton_infer(client(s), "circles", x))[0] == "StatusCode.UNAVAILABLE"
    sender.join(30)
    assert got["seconds"] > 1.2 and same_as_classifier(_clf("circles"), x, outputs_of(got["r"]))
    assert s.stop(None) == 0 and s.err.read_text().count("\n") == 1, s.err.read_text()


def test_grpc_port_in_use_is_one_line(server: Server) -> None:
    assert_clean_error(run_cli("serve", ARTIFACTS / "circles", "--port", "0", "--grpc-port", server.grpc),  # type: ignore[attr-defined]
                       1, "cannot listen on", "--grpc-port")


def test_a_body_limit_past_grpc_s_c_int_still_starts(tmp_path: Path) -> None:
    """--max-body-mb 600 with --grpc-port: grpc's receive limit (4x the body limit) is capped at its C int (it was an
    OverflowError traceback at start-up); the server starts and answers over both APIs."""
    shutil.copytree(ARTIFACTS / "circles", tmp_path / "circles")
    s = Server([tmp_path / "circles"], tmp_path, "--grpc-port", "0", "--max-body-mb", "600")
    try:
        s.grpc = grpc_port(s)  # type: ignore[attr-defined]
        assert client(s).is_server_ready()
        assert _request(s.port, "GET", "/v2/health/ready")[0] == 200
    finally:
        assert s.stop() == 0
    assert "Traceback" not in s.err.read_text()
