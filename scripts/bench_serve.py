"""`edgeclf serve` under load, side by side in one run: batching on, batching off (--max-batch-rows 1) and Seldon
MLServer 1.7 with adaptive batching, each serving the same ONNX file, each in its own process; throughput and
p50/p99 latency at 1, 8, 32, 64 concurrent clients sending one-row JSON infer requests (the Open Inference Protocol,
which all three speak).

    .venv/bin/python scripts/bench_serve.py                               # edgeclf only
    .venv/bin/python scripts/bench_serve.py --mlserver /tmp/mlserver-venv --json /tmp/bench_serve.json

MLServer goes in its own venv (it pins fastapi < 0.116), never in the project's:
    python3 -m venv /tmp/mlserver-venv && /tmp/mlserver-venv/bin/pip install mlserver==1.7.1 onnxruntime numpy uvloop==0.21.0
(uvloop 0.22+ breaks MLServer 1.7.1's inference worker: it calls asyncio.get_event_loop() outside a loop.)
Its runtime here is a minimal MLModel wrapping onnxruntime on the artifact's fixed-batch files (one row: the
1-row file; more: the 64-row file, padded), which is what adaptive batching hands it.

The clients keep one connection each and form a closed loop (each sends its next request when the previous answer
is in). On a 2-core machine the load generator shares the cores with the server, so it must cost little: by default
it is scripts/bench_serve_load.c (one epoll thread, built with gcc into a temporary folder at each run); without gcc
it falls back to a Python asyncio client on raw sockets, which costs a few times more CPU per request and so takes
more of the cores from the server. `--client c|python` chooses; each run prints which one it used, and each cell
the client's CPU per request next to the server's.

    .venv/bin/python scripts/bench_serve.py --clients 32 --seconds 5 --repeat 5   # the batching target's cell

--repeat N measures each cell N times, taking turns between batching on and off so that both see the same changes in
the machine's load; it reports each server's median round and the median of the per-round on/off ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOAD_C = Path(__file__).resolve().parent / "bench_serve_load.c"
RUNTIME = '''
import numpy as np, onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

class OnnxModel(MLModel):
    async def load(self):
        opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
        folder = self.settings.parameters.uri
        self.one = ort.InferenceSession(folder + "/model.b1.onnx", opts, providers=["CPUExecutionProvider"])
        self.many = ort.InferenceSession(folder + "/model.b64.onnx", opts, providers=["CPUExecutionProvider"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32).reshape(-1, FEATURES)
        n = len(x)
        if n == 1:
            p = self.one.run(["probabilities"], {"input": x})[0]
        else:
            p = np.concatenate([self._padded(x[i:i + 64]) for i in range(0, n, 64)])
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("probabilities", p)])

    def _padded(self, x):
        pad = np.zeros((64, x.shape[1]), np.float32); pad[: len(x)] = x
        return self.many.run(["probabilities"], {"input": pad})[0][: len(x)]
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not get ready")


def start_edgeclf(folder: Path, batch_rows: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgeclf.cli", "serve", str(folder), "--port", str(port),
                             "--max-batch-rows", str(batch_rows)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, f"/v2/models/{folder.name}/ready", proc)
    return proc, port


def start_mlserver(venv: Path, folder: Path, work: Path, features: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    (work / "runtime.py").write_text(RUNTIME.replace("FEATURES", str(features)))
    model = work / folder.name
    model.mkdir()
    (model / "model-settings.json").write_text(json.dumps({
        "name": folder.name, "implementation": "runtime.OnnxModel", "parameters": {"uri": str(folder)},
        "max_batch_size": 64, "max_batch_time": 0.001}))  # adaptive batching on: up to 64 rows or 1 ms
    (work / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "debug": False}))
    env = dict(os.environ, PYTHONPATH=str(work))
    proc = subprocess.Popen([str(venv / "bin" / "mlserver"), "start", str(work)], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, f"/v2/models/{folder.name}/ready", proc)
    return proc, port


def request_bytes(model: str, row: list[float]) -> bytes:
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, len(row)], "datatype": "FP32", "data": row}],
                       "outputs": [{"name": "probabilities"}]}).encode()
    head = (f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def client(port: int, payload: bytes, until: float, warm_until: float, lat: list[float],
                 errors: list[int], sent: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while True:
        t0 = time.perf_counter()
        if t0 >= until:
            break
        sent.append(1)
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
        if t0 >= warm_until:
            lat.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(1)
    writer.close()


async def load(port: int, payload: bytes, clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    lat: list[float] = []
    errors: list[int] = []
    sent: list[int] = []
    cpu = time.process_time()
    start = time.perf_counter()
    warm_until, until = start + warmup, start + warmup + seconds
    await asyncio.gather(*(client(port, payload, until, warm_until, lat, errors, sent) for _ in range(clients)))
    lat.sort()
    return summary(clients, lat, len(sent), len(errors), seconds, time.process_time() - cpu)


def build_c_client(work: Path) -> Path | None:
    """The C load generator, compiled into work; None when there is no gcc or it does not build."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    exe = work / "bench_serve_load"
    built = subprocess.run([gcc, "-O2", "-o", str(exe), str(LOAD_C)], capture_output=True)
    return exe if built.returncode == 0 else None


def load_c(exe: Path, port: int, payload: bytes, clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".http") as f:
        f.write(payload)
        f.flush()
        done = subprocess.run([str(exe), str(port), f.name, str(clients), str(warmup), str(seconds)],
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"load generator failed: {done.stderr.strip()}")
    head, *lines = done.stdout.split("\n")
    sent, errors, cpu = head.split()
    lat = sorted(int(v) / 1e6 for v in lines if v)
    return summary(clients, lat, int(sent), int(errors), seconds, float(cpu))


def summary(clients: int, lat: list[float], sent: int, errors: int, seconds: float, cpu: float) -> dict[str, Any]:
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else lat * 99
    return {"clients": clients, "requests": len(lat), "sent": sent, "errors": errors, "rps": len(lat) / seconds,
            "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "client_cpu_us_per_request": cpu / sent * 1e6}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server and its child processes (MLServer's inference worker) so far."""
    import psutil

    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    return sum(p.cpu_times().user + p.cpu_times().system for p in procs)


def cell(name: str, proc: subprocess.Popen[bytes], port: int, payload: bytes, clients: int,
         args: argparse.Namespace) -> dict[str, Any]:
    """One cell: requests per second, latency, and the server's CPU time per request (warm-up included in both
    counts), which a busy shared machine disturbs less than throughput."""
    cpu = cpu_seconds(proc.pid)
    if args.exe is not None:
        r = load_c(args.exe, port, payload, clients, args.seconds, args.warmup)
    else:
        r = asyncio.run(load(port, payload, clients, args.seconds, args.warmup))
    r["cpu_us_per_request"] = (cpu_seconds(proc.pid) - cpu) / r["sent"] * 1e6
    r["server"] = name
    return r


def show(r: dict[str, Any], note: str = "") -> None:
    print(f"{r['server']:<22} {r['clients']:>3} clients  {r['rps']:>8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  "
          f"p99 {r['p99_ms']:6.2f} ms  server CPU {r['cpu_us_per_request']:5.0f} us/req  "
          f"client CPU {r['client_cpu_us_per_request']:4.0f} us/req  errors {r['errors']}{note}", flush=True)


def measure(servers: dict[str, tuple[subprocess.Popen[bytes], int]], payload: bytes,
            args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per client count, --repeat rounds that take turns between the servers (so a change in the machine's load
    falls on each alike); each server's cell is its median-throughput round."""
    rows = []
    for c in args.clients:
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        for i in range(args.repeat):
            for name, (proc, port) in servers.items():
                rounds[name].append(cell(name, proc, port, payload, c, args))
                if args.repeat > 1:
                    show(rounds[name][-1], f"  (round {i + 1})")
        for name in servers:
            r = sorted(rounds[name], key=lambda r: r["rps"])[(args.repeat - 1) // 2]
            show(r, "  (median of the rounds)" if args.repeat > 1 else "")
            rows.append(r)
        on, off = rounds.get("edgeclf batching"), rounds.get("edgeclf batching off")
        if on and off and args.repeat > 1:  # a round's two cells saw the same machine: their ratio is steadier
            ratios = sorted(a["rps"] / b["rps"] for a, b in zip(on, off))
            print(f"{c} clients, on / off per round: {', '.join(f'{x:.2f}x' for x in ratios)}; "
                  f"median {statistics.median(ratios):.2f}x", flush=True)
    return rows


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--artifact", default=str(ROOT / "artifacts" / "circles"))
    ap.add_argument("--clients", type=lambda s: [int(v) for v in s.split(",")], default=[1, 8, 32, 64])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--mlserver", type=Path, help="venv holding mlserver 1.7 (left out when not given)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--client", choices=("auto", "c", "python"), default="auto",
                    help="load generator: the C one (gcc), the Python asyncio one, or C when gcc builds it")
    ap.add_argument("--max-batch-rows", type=int, default=256, help="edgeclf's batching-on setting")
    ap.add_argument("--repeat", type=int, default=1, help="rounds per cell, taking turns between the servers; "
                                                          "the median round is reported")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        args.exe = None if args.client == "python" else build_c_client(Path(work))
        if args.exe is None and args.client == "c":
            raise SystemExit("--client c: gcc is missing or could not build scripts/bench_serve_load.c")
        run_all(args)


def run_all(args: argparse.Namespace) -> None:
    folder = Path(args.artifact).resolve()
    manifest = json.loads((folder / "manifest.json").read_text())
    row = [round(f.get("mean", 0.0), 4) for f in manifest["features"]]
    payload = request_bytes(folder.name, row)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; {folder.name}, 1-row JSON requests, {args.seconds:g} s per cell; load generator: "
          f"{'C (scripts/bench_serve_load.c)' if args.exe else 'Python asyncio'}", flush=True)
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:  # both edgeclf servers up at once (an idle one waits in epoll): their rounds can take turns
        for name, batch_rows in (("edgeclf batching", args.max_batch_rows), ("edgeclf batching off", 1)):
            servers[name] = start_edgeclf(folder, batch_rows)
        results = measure(servers, payload, args)
    finally:
        for proc, _ in servers.values():
            stop(proc)
    if args.mlserver:
        with tempfile.TemporaryDirectory() as work:
            proc, port = start_mlserver(args.mlserver, folder, Path(work), len(row))
            try:
                results += measure({"MLServer 1.7 adaptive": (proc, port)}, payload, args)
            finally:
                stop(proc)
    on = {r["clients"]: r["rps"] for r in results if r["server"] == "edgeclf batching"}
    off = {r["clients"]: r["rps"] for r in results if r["server"] == "edgeclf batching off"}
    print("batching on / off throughput: " + ", ".join(f"{c} clients {on[c] / off[c]:.2f}x" for c in on if off.get(c)),
          f"(load average now {os.getloadavg()[0]:.1f})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
