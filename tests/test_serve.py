"""`edgeclf serve` as a real server process on a free port: tritonclient.http (binary and JSON), a plain HTTP client
for every error, answers under concurrent load bit-identical to the Classifier's on each request alone, an artifact
swapped during load, SIGTERM during load, slow and vanishing clients, an oversized body, 1,000 idle connections,
the metrics and the bearer token. The binary encoding in these tests is written here from the protocol's text, not
taken from the server."""

from __future__ import annotations

import gzip
import http.client
import importlib.util
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from helpers import ARTIFACTS, assert_clean_error, run_cli, skip_or_fail

from edgeclf.runtime import Classifier

TASKS = ("circles", "iris")  # binary and multiclass
SERVE_MODULES = ("uvicorn", "starlette", "prometheus_client", "orjson", "tritonclient.http")


def _missing() -> str | None:
    for m in SERVE_MODULES:
        try:
            if importlib.util.find_spec(m) is None:
                return m
        except ImportError:
            return m
    return None


@pytest.fixture(scope="module", autouse=True)
def serve_extra() -> None:
    missing = _missing()
    if missing:  # CI installs the serve extra and tritonclient (dev): there, missing is a failure
        skip_or_fail(f"{missing} is not installed: pip install 'edgeclf[serve,dev]'",
                     required=os.environ.get("CI") == "true")


class Server:
    """`edgeclf serve` in a subprocess on a free port; stdout (the access log) and stderr go to files."""

    def __init__(self, folders: list[Path], tmp: Path, *args: str) -> None:
        self.out, self.err = tmp / f"out-{id(self)}.log", tmp / f"err-{id(self)}.log"
        cmd = [sys.executable, "-m", "edgeclf.cli", "serve", *map(str, folders), "--port", "0", *args]
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        self.port = self._wait_port()

    def _wait_port(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = self.err.read_text()
            if " on http://" in text:
                port = int(text.split(" on http://", 1)[1].split()[0].rsplit(":", 1)[1])
                if _get(port, "/v2/health/ready")[0] == 200:
                    return port
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.err.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"server did not start: {self.err.read_text()}")

    def stop(self, sig: int | None = signal.SIGTERM) -> int:
        """Send sig (None: it was sent already) and wait for the exit status."""
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=40)


def _request(port: int, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body, headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        return _request(port, "GET", path)
    except OSError:
        return 0, {}, b""


def json_body(x: np.ndarray, datatype: str = "FP32", name: str = "input") -> bytes:
    return json.dumps({"inputs": [{"name": name, "shape": list(x.shape), "datatype": datatype,
                                   "data": x.ravel().tolist()}]}).encode()


def binary_body(x: np.ndarray, outputs: tuple[str, ...] = ("probabilities", "logits", "label"),
                ) -> tuple[bytes, dict[str, str]]:
    """An infer request with the input as raw little-endian float32 after the JSON, every output asked binary."""
    raw = np.ascontiguousarray(x, "<f4").tobytes()
    head = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in outputs]}).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}


def decode(headers: dict[str, str], body: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The response JSON and its outputs as arrays (binary ones cut from the tail in order)."""
    cut = int(headers.get("inference-header-content-length", len(body)))
    head = json.loads(body[:cut])
    pos, outs = cut, {}
    for o in head["outputs"]:
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is None:
            data = o["data"]
            outs[o["name"]] = np.array(data, np.float32 if o["datatype"] == "FP32" else object).reshape(o["shape"])
            continue
        blob = body[pos:pos + size]
        pos += size
        if o["datatype"] == "BYTES":
            items, i = [], 0
            while i < len(blob):
                (n,) = struct.unpack_from("<I", blob, i)
                items.append(blob[i + 4:i + 4 + n].decode())
                i += 4 + n
            outs[o["name"]] = np.array(items, object)
        else:
            outs[o["name"]] = np.frombuffer(blob, "<f4").reshape(o["shape"])
    assert pos == len(body)
    return head, outs


def rows(task: str, n: int, seed: int) -> np.ndarray:
    clf = _clf(task)
    return np.random.default_rng(seed).normal(size=(n, clf.n_features_in_)).astype(np.float32)


_CLFS: dict[str, Classifier] = {}


def _clf(task: str, folder: Path | None = None) -> Classifier:
    key = str(folder or task)
    if key not in _CLFS:
        _CLFS[key] = Classifier.load(folder or ARTIFACTS / task)
    return _CLFS[key]


def same_as_classifier(clf: Classifier, x: np.ndarray, outs: dict[str, np.ndarray]) -> bool:
    return (np.array_equal(outs["probabilities"], clf.predict_proba(x))
            and np.array_equal(outs["logits"], clf.predict_logits(x))
            and list(outs["label"]) == list(clf.predict(x)))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("served")
    for t in TASKS:
        shutil.copytree(ARTIFACTS / t, root / t)
    return [root / t for t in TASKS]


@pytest.fixture(scope="module")
def server(folders: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(folders, tmp_path_factory.mktemp("logs"), "--max-body-mb", "1")
    yield s
    assert s.stop() == 0


# ---------------------------------------------------------------- tritonclient


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("task", TASKS)
def test_tritonclient_infer_equals_classifier(server: Server, task: str, binary: bool) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_model_ready(task)
    x = rows(task, 37, seed=1)
    inp = triton.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    asked = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("probabilities", "logits", "label")]
    manifest = json.loads((ARTIFACTS / task / "manifest.json").read_text())
    version = manifest["origin"]["state_dict_sha256"]
    result = client.infer(task, [inp], outputs=asked, model_version=version)
    clf = _clf(task)
    assert np.array_equal(result.as_numpy("probabilities"), clf.predict_proba(x))
    assert np.array_equal(result.as_numpy("logits"), clf.predict_logits(x))
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")]
    assert labels == list(clf.predict(x))
    meta = client.get_model_metadata(task)
    assert meta["versions"] == [version] and meta["inputs"][0]["shape"] == [-1, clf.n_features_in_]
    assert result.get_response()["model_version"] == version


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_compressed_request(server: Server, algorithm: str) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    x = rows("circles", 5, seed=12)
    inp = triton.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("circles", [inp], request_compression_algorithm=algorithm)
    assert np.array_equal(result.as_numpy("probabilities"), _clf("circles").predict_proba(x))


def test_tritonclient_subset_of_outputs_and_plain_json(server: Server) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    x = rows("iris", 3, seed=2)
    inp = triton.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("iris", [inp], outputs=[triton.InferRequestedOutput("label")])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label"]
    # a plain JSON request with the data nested and as FP64: converted as the runtime converts arrays
    status, headers, body = _request(server.port, "POST", "/v2/models/iris/infer", json.dumps(
        {"id": "r1", "inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP64",
                                  "data": x.astype(np.float64).tolist()}]}).encode())
    head, outs = decode(headers, body)
    assert status == 200 and head["id"] == "r1" and headers["content-type"] == "application/json"
    assert same_as_classifier(_clf("iris"), x.astype(np.float64), outs)


def test_health_and_server_metadata(server: Server) -> None:
    assert json.loads(_get(server.port, "/v2/health/live")[2]) == {"live": True}
    meta = json.loads(_get(server.port, "/v2")[2])
    assert meta["name"] == "edgeclf" and "binary_tensor_data" in meta["extensions"]
    assert json.loads(_get(server.port, "/v2/models/circles/ready")[2])["ready"] is True


# ---------------------------------------------------------------- every error, plain HTTP client

NAN_BIN = np.array([[0.5, np.nan]], np.float32)
ERRORS = {
    # id: (path, body, headers, status, fragment of the error)
    "not-json": ("circles/infer", b"{not json", {}, 400, "not JSON"),
    "json-too-deep": ("circles/infer", b"[" * 100_000 + b"]" * 100_000, {}, 400, "not JSON"),
    "json-array": ("circles/infer", b"[1, 2]", {}, 400, "expected an object"),
    "wrong-input-name": ("circles/infer", json_body(np.zeros((1, 2)), name="x"), {}, 400, "expected 'input'"),
    "wrong-shape": ("circles/infer", json_body(np.zeros((2, 3))), {}, 400, "shape (2, 3)"),
    "wrong-dtype": ("circles/infer", json_body(np.zeros((1, 2)), datatype="BYTES"), {}, 400, "datatype 'BYTES'"),
    "null-data": ("circles/infer", json.dumps({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32",
                                                           "data": [1.0, None]}]}).encode(), {}, 400,
                  "holds null for datatype FP32: expected numbers"),
    "text-data": ("circles/infer", json.dumps({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32",
                                                           "data": [1.0, "a"]}]}).encode(), {}, 400,
                  "holds text ('a') for datatype FP32"),
    "bool-data": ("circles/infer", json.dumps({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32",
                                                           "data": [True, False]}]}).encode(), {}, 400,
                  "holds true/false for datatype FP32"),
    "nan-json": ("circles/infer", b'{"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", '
                                  b'"data": [NaN, 1]}]}', {}, 400, "NaN or inf"),
    "inf-binary": ("circles/infer", *binary_body(NAN_BIN * np.inf), 400, "NaN or inf"),
    "too-big-for-fp32": ("circles/infer", json_body(np.array([[1e300, 0.0]]), datatype="FP64"), {}, 400,
                         "does not fit float32"),
    "data-length": ("circles/infer", json.dumps({"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP32",
                                                             "data": [1, 2, 3]}]}).encode(), {}, 400, "has 3 values"),
    "binary-length": ("circles/infer", binary_body(np.zeros((2, 2), np.float32))[0][:-4],
                      binary_body(np.zeros((2, 2), np.float32))[1], 400, "binary_data_size"),
    "int-out-of-range": ("circles/infer", json.dumps({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "INT8",
                                                                  "data": [1, 300]}]}).encode(), {}, 400, "INT8's range"),
    "int-beyond-64-bits": ("circles/infer", json.dumps({"inputs": [{"name": "input", "shape": [1, 2],
                                                                    "datatype": "INT32", "data": [1, 10**23]}]}).encode(),
                           {}, 400, "outside INT32's range"),
    "unknown-output": ("circles/infer", json.dumps({"inputs": json.loads(json_body(np.zeros((1, 2))))["inputs"],
                                                    "outputs": [{"name": "embedding"}]}).encode(), {}, 400,
                       "output 'embedding'"),
    "parameters-not-object": ("circles/infer", json.dumps({"inputs": [{"name": "input", "shape": [1, 2],
                                                                       "datatype": "FP32", "data": [1, 2],
                                                                       "parameters": [1]}]}).encode(), {}, 400,
                              "expected an object"),
    "unknown-model": ("nosuch/infer", json_body(np.zeros((1, 2))), {}, 404, "unknown model 'nosuch'"),
    "unknown-version": ("circles/versions/7/infer", json_body(np.zeros((1, 2))), {}, 404, "not '7'"),
    "unknown-model-metadata": ("nosuch", None, {}, 404, "unknown model"),
    "infer-by-get": ("circles/infer", None, {}, 405, "method GET is not allowed"),
    "no-such-route": ("circles/infer/more", None, {}, 404, "no route"),
    "oversized-declared": ("circles/infer", b"x" * (1024 * 1024 + 1), {}, 413, "limit of 1048576"),
    "oversized-inflated": ("circles/infer", gzip.compress(b" " * (2 * 1024 * 1024)), {"Content-Encoding": "gzip"},
                           413, "inflates to over"),
    "bad-gzip": ("circles/infer", b"not gzip", {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
    "unknown-encoding": ("circles/infer", b"{}", {"Content-Encoding": "br"}, 400, "Content-Encoding 'br'"),
}


@pytest.mark.parametrize("case", ERRORS, ids=list(ERRORS))
def test_errors_are_protocol_json(server: Server, case: str) -> None:
    path, body, headers, status, fragment = ERRORS[case]
    got, got_headers, text = _request(server.port, "POST" if body is not None else "GET", f"/v2/models/{path}",
                                      body, headers)
    assert got == status, text
    assert got_headers["content-type"] == "application/json"
    message = json.loads(text)["error"]
    assert fragment in message and "\n" not in message, message


def test_oversized_chunked_body_is_refused_while_read(server: Server) -> None:
    """No Content-Length (chunked): the server counts what it reads and stops at the limit."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    chunks = (b"1" * 65536 for _ in range(40))  # 2.5 MiB against a 1 MiB limit
    try:
        conn.request("POST", "/v2/models/circles/infer", chunks, encode_chunked=True)
        r = conn.getresponse()
        assert r.status == 413 and "limit" in json.loads(r.read())["error"]
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while we were still sending: also a refusal
    finally:
        conn.close()
    assert _get(server.port, "/v2/health/live")[0] == 200


def test_overload_is_503_with_retry_after(folders: list[Path], tmp_path: Path) -> None:
    s = Server(folders[:1], tmp_path, "--max-queue", "1", "--max-batch-rows", "1")
    try:
        x = rows("circles", 60_000, seed=3)  # each request takes milliseconds: the queue fills
        body, headers = binary_body(x, ("probabilities",))
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: _request(s.port, "POST", "/v2/models/circles/infer", body, headers),
                                    range(24)))
        codes = sorted({a[0] for a in answers})
        print(f"overload: 24 requests of 60,000 rows from 12 clients: {sum(a[0] == 200 for a in answers)} answered, "
              f"{sum(a[0] == 503 for a in answers)} got 503")
        assert 503 in codes and 200 in codes and set(codes) <= {200, 503}, codes
        for status, h, text in answers:
            if status == 503:
                assert h["retry-after"] == "1" and "overloaded" in json.loads(text)["error"]
            else:
                assert np.array_equal(decode(h, text)[1]["probabilities"], _clf("circles").predict_proba(x))
    finally:
        assert s.stop() == 0


# ---------------------------------------------------------------- load


def _load(port: int, task: str, seed: int, count: int) -> list[tuple[np.ndarray, dict[str, Any], dict[str, np.ndarray]]]:
    """`count` requests on one keep-alive connection: mostly 1 row, some mixed sizes (300 > a batch: alone)."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    got = []
    try:
        for i in range(count):
            n = rng.choice((1, 1, 1, 1, 2, 7, 64, 300))
            x = rows(task, n, seed * 1000 + i)
            if rng.random() < 0.5:
                body, headers = binary_body(x)
            else:
                body, headers = json_body(x), {}
            conn.request("POST", f"/v2/models/{task}/infer", body, headers)
            r = conn.getresponse()
            h = {k.lower(): v for k, v in r.getheaders()}
            text = r.read()
            assert r.status == 200, text
            head, outs = decode(h, text)
            got.append((x, head, outs))
    finally:
        conn.close()
    return got


def test_concurrent_answers_are_bit_identical(server: Server) -> None:
    """48 clients at once, 1-row and mixed sizes: every answer equals the Classifier's on that request alone,
    nothing is lost, and the server did coalesce (fewer Classifier calls than requests)."""
    before = _metric(server.port, "edgeclf_batch_rows_count", model="circles")
    with ThreadPoolExecutor(48) as pool:
        results = list(pool.map(lambda i: (TASKS[i % 2], _load(server.port, TASKS[i % 2], i, 12)), range(48)))
    answered = 0
    for task, got in results:
        for x, _, outs in got:
            assert same_as_classifier(_clf(task), x, outs)
            answered += 1
    assert answered == 48 * 12
    calls = _metric(server.port, "edgeclf_batch_rows_count", model="circles") - before
    print(f"concurrency: {answered} requests from 48 clients, 0 failed, 0 wrong; circles: {24 * 12} requests in "
          f"{calls:.0f} calls")
    assert 0 < calls < 24 * 12, calls


def test_max_delay_gathers_a_batch(folders: list[Path], tmp_path: Path) -> None:
    """With --max-delay-ms, requests arriving within the delay share one call (up to --max-batch-rows)."""
    s = Server(folders[:1], tmp_path, "--max-delay-ms", "2000", "--max-batch-rows", "8")
    try:
        xs = [rows("circles", 1, 20 + i) for i in range(8)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda x: _request(s.port, "POST", "/v2/models/circles/infer", json_body(x)), xs))
        for x, (status, h, text) in zip(xs, answers):
            assert status == 200 and same_as_classifier(_clf("circles"), x, decode(h, text)[1])
        calls = _metric(s.port, "edgeclf_batch_rows_count", model="circles")
        assert _metric(s.port, "edgeclf_batch_rows_sum", model="circles") == 8
        assert calls <= 3, calls  # 8 one-row requests sent at once, up to 2 s to gather: one call, at most a few
    finally:
        assert s.stop() == 0


def _metric(port: int, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = _get(port, "/metrics")[2].decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def test_metrics_text(server: Server) -> None:
    before = {k: _metric(server.port, "edgeclf_requests_total", model="iris", code=k) for k in ("200", "400")}
    seconds = _metric(server.port, "edgeclf_request_seconds_count", model="iris")
    for _ in range(3):
        assert _request(server.port, "POST", "/v2/models/iris/infer", json_body(rows("iris", 2, 4)))[0] == 200
    assert _request(server.port, "POST", "/v2/models/iris/infer", b"{}")[0] == 400
    assert _metric(server.port, "edgeclf_requests_total", model="iris", code="200") - before["200"] == 3
    assert _metric(server.port, "edgeclf_requests_total", model="iris", code="400") - before["400"] == 1
    assert _metric(server.port, "edgeclf_request_seconds_count", model="iris") - seconds == 4
    text = _get(server.port, "/metrics")[2].decode()
    assert 'edgeclf_queue_depth{model="circles"} 0.0' in text
    assert 'edgeclf_batch_rows_bucket{le="1.0",model="iris"}' in text


# ---------------------------------------------------------------- the model's own input checks, per request


def shop_requests(clf: Classifier) -> tuple[list[np.ndarray], dict[int, str]]:
    """Eight requests of three rows for the `shop` model (conftest category_root): three with a category index the
    model refuses (out of range, fractional, negative) in another row each, one with NaN in b (not filled), one
    with NaN in a (the model fills it). Returns the rows and, per bad request, the Classifier's own message."""
    from edgeclf.runtime.errors import InputError

    rng = np.random.default_rng(30)
    color, a, b = (clf.features.index(f) for f in ("color", "a", "b"))
    xs = []
    for _ in range(8):
        x = rng.normal(size=(3, clf.n_features_in_)).astype(np.float32)
        x[:, color] = rng.integers(0, 3, 3)
        xs.append(x)
    xs[1][1, color], xs[3][2, color], xs[5][0, color] = 9.0, 1.5, -1.0
    xs[6][1, b], xs[7][2, a] = np.nan, np.nan
    bad: dict[int, str] = {}
    for i, x in enumerate(xs):
        try:
            clf.predict_proba(x)
        except InputError as e:
            bad[i] = str(e)
    assert sorted(bad) == [1, 3, 5, 6], bad  # the runtime itself accepts NaN in a
    assert bad[1] == ("row 1, column 'color': 9.0 is not a category seen in training; expected one of "
                      "['blue', 'green', 'red'] (or its index 0..2)")
    assert bad[3].startswith("row 2, column 'color': 1.5 ") and bad[5].startswith("row 0, column 'color': -1.0 ")
    return xs, bad


def served_nonfinite_message(runtime_message: str) -> str:
    """The runtime's message less its Python API hint, which a server's client cannot follow."""
    assert runtime_message.startswith("NaN or inf in row(s) 1 (first in row 1, column 'b'): expected finite numbers")
    assert runtime_message.endswith(" (pass allow_nonfinite=True to keep them)")
    return runtime_message.removesuffix(" (pass allow_nonfinite=True to keep them)")


@pytest.mark.slow  # category_root trains a model once per run (~30 s)
def test_a_bad_request_is_refused_alone_before_it_joins_a_batch(category_root: Path, tmp_path: Path) -> None:
    """Concurrent requests gathered by --max-delay-ms: those the model's own checks refuse get 400 with the
    runtime's message naming their own row; the others, batched with them, are answered bit-identically."""
    clf = Classifier.load(category_root / "shop")
    xs, bad = shop_requests(clf)
    s = Server([category_root / "shop"], tmp_path, "--max-delay-ms", "300")
    try:
        def post(x: np.ndarray) -> tuple[int, dict[str, str], bytes]:
            return _request(s.port, "POST", "/v2/models/shop/infer", *binary_body(x))

        with ThreadPoolExecutor(len(xs)) as pool:
            answers = list(pool.map(post, xs))
        batches = _metric(s.port, "edgeclf_batch_rows_count", model="shop")
    finally:
        assert s.stop() == 0
    for i, (x, (status, h, body)) in enumerate(zip(xs, answers)):
        if i in bad:
            expected = served_nonfinite_message(bad[i]) if i == 6 else bad[i]
            assert (status, json.loads(body)) == (400, {"error": expected}), (i, body)
        else:
            assert status == 200 and same_as_classifier(clf, x, decode(h, body)[1]), (i, body[:300])
    assert batches < len(xs) - len(bad)  # some good requests shared a Classifier call
    assert s.err.read_text().count("\n") == 1, s.err.read_text()  # the banner: no error line


# ---------------------------------------------------------------- faults


def test_swap_during_load_is_picked_up_without_a_failed_request(tmp_path: Path) -> None:
    """The served folder is replaced by another model through the store's atomic swap while 16 clients load it:
    no request fails, every answer is the old or the new model's (as its model_version says), and metadata
    then reports the new version."""
    from edgeclf.artifact.store import staged_folder

    folder = tmp_path / "circles"
    shutil.copytree(ARTIFACTS / "circles", folder)
    old, new = _clf("circles"), _clf("moons")
    versions = {old.manifest.origin.state_dict_sha256: old, new.manifest.origin.state_dict_sha256: new}
    new_version = new.manifest.origin.state_dict_sha256

    def client(seed: int) -> list[tuple[np.ndarray, dict[str, Any], dict[str, np.ndarray]]]:
        got: list[tuple[np.ndarray, dict[str, Any], dict[str, np.ndarray]]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(h["model_version"] == new_version for _, h, _ in got[-5:]):
            got += _load(s.port, "circles", seed * 100 + len(got), 5)  # until this client is served the new one
        return got

    s = Server([folder], tmp_path)
    try:
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(client, i) for i in range(16)]
            time.sleep(0.3)
            with staged_folder(folder) as tmp:  # what `edgeclf export` does to a folder
                for p in (ARTIFACTS / "moons").iterdir():
                    shutil.copy2(p, tmp / p.name)
            results = [f.result() for f in futures]
        seen = []
        for got in results:
            for x, head, outs in got:
                seen.append(head["model_version"])
                assert same_as_classifier(versions[head["model_version"]], x, outs)
        assert set(seen) == set(versions), "the load did not span the swap"
        print(f"swap: {len(seen)} requests from 16 clients, {seen.count(new_version)} on the new version, 0 failed, "
              "0 wrong")
        deadline = time.monotonic() + 10
        while json.loads(_get(s.port, "/v2/models/circles")[2])["versions"] != [new.manifest.origin.state_dict_sha256]:
            assert time.monotonic() < deadline, "the new version was not picked up"
            time.sleep(0.1)
        assert "now version" in s.err.read_text()
        with staged_folder(folder) as tmp:  # a folder that does not load: the server keeps the version it has
            (tmp / "manifest.json").write_text("{}")
        deadline = time.monotonic() + 10
        while "does not load" not in s.err.read_text():
            assert time.monotonic() < deadline, s.err.read_text()
            time.sleep(0.1)
        x = rows("circles", 3, 11)
        status, h, text = _request(s.port, "POST", "/v2/models/circles/infer", json_body(x))
        assert status == 200 and same_as_classifier(new, x, decode(h, text)[1])
    finally:
        assert s.stop() == 0


def test_sigterm_during_load_finishes_in_flight_and_exits_0(folders: list[Path], tmp_path: Path) -> None:
    s = Server(folders[:1], tmp_path)
    # 8 MB: more than the loopback socket buffers hold, so once request() returns the server has read the headers
    # and started this request (a request it has not started is not in flight: a stop may refuse it)
    x = rows("circles", 1_000_000, seed=5)
    body, headers = binary_body(x, ("probabilities",))
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
    stop = threading.Event()
    outcomes: list[str] = []

    def hammer() -> None:
        while not stop.is_set():
            try:
                status = _request(s.port, "POST", "/v2/models/circles/infer", json_body(rows("circles", 1, 6)))[0]
                outcomes.append(str(status))
            except OSError:  # refused or closed once the server stops accepting
                outcomes.append("closed")
                return

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    conn.request("POST", "/v2/models/circles/infer", body, headers)  # returns once the body is sent
    s.proc.send_signal(signal.SIGTERM)
    r = conn.getresponse()  # read before waiting for the exit: the server cannot finish a reply nobody reads
    h = {k.lower(): v for k, v in r.getheaders()}
    got = decode(h, r.read())[1]["probabilities"]
    rc = s.stop(None)
    stop.set()
    for t in threads:
        t.join()
    assert rc == 0, s.err.read_text()
    assert r.status == 200 and np.array_equal(got, _clf("circles").predict_proba(x))
    assert set(outcomes) <= {"200", "closed"} and "200" in outcomes, set(outcomes)
    print(f"sigterm: in-flight 1,000,000-row request answered in full; 8 clients: {outcomes.count('200')} answered, "
          f"{outcomes.count('closed')} refused after the stop, 0 errors; exit {rc}")
    assert "Traceback" not in s.err.read_text()


def test_slow_and_vanishing_clients_do_not_stop_the_server(server: Server) -> None:
    body = json_body(rows("circles", 1, 7))
    slow = socket.create_connection(("127.0.0.1", server.port))
    slow.sendall(b"POST /v2/models/circles/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
    slow.sendall(body[:10])  # the rest comes later: meanwhile others are served
    leaver = socket.create_connection(("127.0.0.1", server.port))
    leaver.sendall(b"POST /v2/models/circles/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{\"inp")
    leaver.close()  # gone mid-body
    x = rows("circles", 4, 8)
    for _ in range(5):
        status, h, text = _request(server.port, "POST", "/v2/models/circles/infer", json_body(x))
        assert status == 200 and same_as_classifier(_clf("circles"), x, decode(h, text)[1])
    for i in range(10, len(body), 40):
        slow.sendall(body[i:i + 40])
        time.sleep(0.01)
    reply = slow.recv(65536)
    slow.close()
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]


def test_one_thousand_idle_connections(server: Server) -> None:
    idle = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", server.port)))
        x = rows("iris", 2, 9)
        status, h, text = _request(server.port, "POST", "/v2/models/iris/infer", json_body(x))
        assert status == 200 and same_as_classifier(_clf("iris"), x, decode(h, text)[1])
    finally:
        for sock in idle:
            sock.close()
    assert _get(server.port, "/v2/health/live")[0] == 200


def test_expect_100_continue_is_answered_before_the_body(server: Server) -> None:
    """The interim 100 Continue (a head with no body to follow) still leaves at once: the server holds a response's
    head only until its body is written, in the same loop step."""
    x = rows("circles", 3, 12)
    body = json_body(x)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /v2/models/circles/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue"), "no interim answer"
        sock.sendall(body)
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < _length(reply):
            chunk = sock.recv(65536)  # the socket's timeout bounds the wait
            assert chunk, f"the server closed the connection after {len(reply)} bytes: {reply[:200]!r}"
            reply += chunk
    head, text = reply.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    assert np.array_equal(np.asarray(json.loads(text)["outputs"][0]["data"], np.float32).reshape(3, -1),
                          _clf("circles").predict_proba(x))


def _length(reply: bytes) -> int:
    head = reply.split(b"\r\n\r\n", 1)[0].lower()
    return int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])


def _closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closed sock (recv gives b""); fails if it sends anything or is still open."""
    start = time.monotonic()
    sock.settimeout(limit)
    assert sock.recv(1) == b""
    return time.monotonic() - start


def test_silent_connections_are_closed_after_the_idle_timeout(folders: list[Path], tmp_path: Path) -> None:
    """--idle-timeout: a connection that never sends a request, and a kept-alive one after its answer, are closed
    after that many seconds; one that keeps sending is served."""
    s = Server(folders[:1], tmp_path, "--idle-timeout", "2")
    try:
        opened = time.monotonic()  # the silent connection's timer starts when it is accepted
        silent = socket.create_connection(("127.0.0.1", s.port))
        kept = socket.create_connection(("127.0.0.1", s.port))
        kept.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        kept.settimeout(10)
        assert kept.recv(65536).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        _closed_after(silent, 15)
        assert 1.9 <= time.monotonic() - opened
        _closed_after(kept, 15)  # closed (recv b""), not timed out
        assert 1.9 <= time.monotonic() - answered < 8  # about its idle time after its answer (slack for slow CI)
        busy = socket.create_connection(("127.0.0.1", s.port))
        busy.settimeout(10)
        for _ in range(8):  # 2.4 s of requests 0.3 s apart, over the timeout; a stalled machine has 1.7 s per gap
            busy.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            assert busy.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(0.3)
        busy.close()
    finally:
        assert s.stop() == 0


# ---------------------------------------------------------------- token, bind, access log


def test_token_required_and_access_log(folders: list[Path], tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    s = Server(folders[:1], tmp_path, "--token-file", str(token))
    try:
        body = json_body(rows("circles", 1, 10))
        status, h, text = _request(s.port, "POST", "/v2/models/circles/infer", body)
        assert status == 401 and h["www-authenticate"] == "Bearer" and "bearer token" in json.loads(text)["error"]
        assert _request(s.port, "GET", "/metrics", None, {"Authorization": "Bearer wrong"})[0] == 401
        assert _request(s.port, "POST", "/v2/models/circles/infer", body,
                        {"Authorization": "Bearer s3cret-token"})[0] == 200
        assert _get(s.port, "/v2/health/ready")[0] == 200  # probes carry no token
    finally:
        assert s.stop(signal.SIGINT) == 0
    log = [line for line in s.out.read_text().splitlines() if line]
    # the server's own readiness probes (Server._wait_port) are requests too
    assert [line.split('"')[1] for line in log][-4:] == ["POST /v2/models/circles/infer", "GET /metrics",
                                                         "POST /v2/models/circles/infer", "GET /v2/health/ready"]
    assert [line.split('"')[2].split()[0] for line in log][-4:] == ["401", "401", "200", "200"]


def test_non_loopback_bind_needs_a_token(tmp_path: Path) -> None:
    assert_clean_error(run_cli("serve", ARTIFACTS / "circles", "--host", "0.0.0.0"), 1, "refusing to listen on 0.0.0.0",
                       "--token-file")
    empty = tmp_path / "token"
    empty.write_text("\n")
    assert_clean_error(run_cli("serve", ARTIFACTS / "circles", "--token-file", empty), 1, "empty file")
    assert_clean_error(run_cli("serve", ARTIFACTS / "circles", "--token-file", tmp_path / "none"), 1,
                       "cannot read --token-file")


def test_port_in_use_is_one_line(server: Server) -> None:
    assert_clean_error(run_cli("serve", ARTIFACTS / "circles", "--port", server.port), 1, "cannot listen on",
                       "--port")


@pytest.mark.parametrize("datatype", ["FP32", "INT32"])
def test_zero_rows_and_whole_numbers_are_taken_for_any_numeric_datatype(server: Server, datatype: str) -> None:
    """[] for a (0, F) request is no value of a wrong kind (it was "numbers with a fraction" for INT32); 3.0 for an
    integer datatype is the whole number 3, answered as the Classifier answers [3, 4]."""
    empty = json.dumps({"inputs": [{"name": "input", "shape": [0, 2], "datatype": datatype, "data": []}]}).encode()
    status, h, body = _request(server.port, "POST", "/v2/models/circles/infer", empty)
    assert status == 200 and decode(h, body)[1]["probabilities"].shape == (0, 2), body
    whole = json.dumps({"inputs": [{"name": "input", "shape": [1, 2], "datatype": datatype,
                                    "data": [3.0, 4.0]}]}).encode()
    status, h, body = _request(server.port, "POST", "/v2/models/circles/infer", whole)
    assert status == 200, body
    assert same_as_classifier(_clf("circles"), np.array([[3, 4]], np.float32), decode(h, body)[1])
