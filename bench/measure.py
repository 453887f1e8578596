"""Measure the runtime against eager PyTorch, TorchScript and raw onnxruntime, side by side in one run.

torch and onnx are optional here: their columns are skipped with a note when they are not installed.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edgeclf.runtime import Classifier, Manifest
from edgeclf.runtime.contract import INPUT_NAME, PROBABILITIES
from edgeclf.runtime.formats import TORCHSCRIPT

ENGINES = ("eager", "torchscript", "onnxruntime", "classifier", "classifier-cuda")
ROUNDS = 3  # per N, every engine takes this many turns
BLOCK_SECONDS = 0.02  # one turn: back-to-back calls of one engine (3 to 200 of them)
SETTLE_SECONDS = 0.1  # a pause before each turn: onnxruntime's and torch's idle threads spin-wait for tens of ms


@dataclass
class Timing:
    engine: str
    rows: int
    median_s: float
    p10_s: float
    p90_s: float
    reps: int

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.median_s if self.median_s > 0 else float("inf")


@dataclass
class BenchReport:
    folder: str
    threads: int
    machine: dict[str, Any]
    timings: list[Timing] = field(default_factory=list)
    cold_start: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    device: str = "cpu"  # where eager and TorchScript ran

    def get(self, engine: str, rows: int) -> Timing | None:
        return next((t for t in self.timings if t.engine == engine and t.rows == rows), None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for t, td in zip(self.timings, d["timings"]):
            td["rows_per_s"] = t.rows_per_s
        return d


def machine_info(threads: int) -> dict[str, Any]:
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}


def raw_sessions(folder: Path, manifest: Manifest, threads: int) -> tuple[dict[int, Any], Any | None]:
    """The hand-rolled peer: what a script would open itself, `InferenceSession(file)` with
    `intra_op_num_threads=threads`: one per exported batch size (the same graphs the Classifier runs), and a
    dynamic-batch copy of the largest graph for one `session.run` over any other N (None without onnx)."""
    import onnxruntime as ort

    def open_(data: bytes | str) -> Any:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])

    fixed = {e.batch_size: open_(str(folder / e.path)) for e in manifest.onnx_files}
    try:
        import onnx
    except ImportError:
        return fixed, None
    model = onnx.load(str(folder / manifest.onnx_files[-1].path))
    for v in [*model.graph.input, *model.graph.output]:
        v.type.tensor_type.shape.dim[0].dim_param = "N"
    del model.graph.value_info[:]
    return fixed, open_(model.SerializeToString())


def torch_engines(folder: Path, manifest: Manifest, threads: int,
                  device: str = "cpu") -> dict[str, Callable[[np.ndarray], object]]:
    """Eager and TorchScript, numpy in -> numpy out (on CUDA the copies to and from the GPU are included)."""
    try:
        import torch

        from edgeclf.export.formats import load_torchscript
        from edgeclf.export.subject import from_trained
        from edgeclf.train.checkpoint import load_checkpoint
    except ImportError:
        return {}
    torch.set_num_threads(threads)
    eager = from_trained(load_checkpoint(folder, manifest.task)).model.to(device)
    ts_entry = manifest.files_of(TORCHSCRIPT.name)[0]
    scripted = load_torchscript(manifest.read_checked(folder, ts_entry)[0]).to(device)

    def run(module: Callable[..., Any]) -> Callable[[np.ndarray], object]:
        def call(x: np.ndarray) -> object:
            with torch.inference_mode():
                return module(torch.from_numpy(x).to(device))[1].cpu().numpy()
        return call

    return {"eager": run(eager), "torchscript": run(scripted)}


def cuda_classifier(folder: Path, threads: int, report: BenchReport) -> Classifier | None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        report.notes.append(f"this onnxruntime has no CUDAExecutionProvider ({ort.get_available_providers()})")
        return None
    return Classifier.load(folder, providers=["CUDAExecutionProvider", "CPUExecutionProvider"], threads=threads)


def throughput(folder: Path, rows: Sequence[int], threads: int, report: BenchReport, device: str = "cpu") -> None:
    clf = Classifier.load(folder, threads=threads)
    manifest = clf.manifest
    engines = torch_engines(folder, manifest, threads, device)
    report.device = device
    if not engines:
        report.notes.append("torch is not installed: eager and TorchScript columns skipped")
    fixed, dyn = raw_sessions(folder, manifest, threads)
    if dyn is None:
        report.notes.append("onnx is not installed: raw onnxruntime runs only where N is an exported batch size")
    gpu_clf = cuda_classifier(folder, threads, report) if device == "cuda" else None
    rng = np.random.default_rng(0)
    lo, hi = manifest.domain.low, manifest.domain.high
    for n in rows:
        x = rng.uniform(lo, hi, (n, len(manifest.features))).astype(np.float32)
        calls: dict[str, Callable[[], object]] = {name: partial(fn, x) for name, fn in engines.items()}
        sess = fixed.get(n, dyn)
        if sess is not None:
            calls["onnxruntime"] = partial(sess.run, [PROBABILITIES], {INPUT_NAME: x})
        calls["classifier"] = partial(clf.predict_proba, x)
        if gpu_clf is not None:
            calls["classifier-cuda"] = partial(gpu_clf.predict_proba, x)
        report.timings += time_side_by_side(calls, n)


def time_side_by_side(calls: Mapping[str, Callable[[], object]], rows: int) -> list[Timing]:
    """The engines take turns in blocks of back-to-back calls (about BLOCK_SECONDS each), ROUNDS times, so a
    noisy neighbour slows all of them alike; within a block only the calls after the first are kept: each engine
    is timed warm, as an app calling it in a loop sees it (switching engines evicts the last one's weights and
    buffers from the caches, which would add ~20 us to every small call of every engine). Each turn starts after a
    short pause: torch's OpenMP threads and onnxruntime's intra-op threads spin after their work, and on a 2-core
    machine they would take the next engine's cores."""
    block: dict[str, int] = {}
    for name, fn in calls.items():
        fn()  # warm-up: first-call allocations and lazy initialisation are not throughput
        t = time.perf_counter()
        fn()
        block[name] = max(3, min(200, int(BLOCK_SECONDS / max(time.perf_counter() - t, 1e-7))))
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(ROUNDS):
        for name, fn in calls.items():
            time.sleep(SETTLE_SECONDS)  # the last engine's worker threads stop spinning (OpenMP, onnxruntime)
            fn()  # the cold call after the switch
            for _ in range(block[name] - 1):
                t = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t)
    return [_timing(name, rows, s) for name, s in samples.items()]


def _timing(engine: str, rows: int, samples: list[float]) -> Timing:
    q = statistics.quantiles(samples, n=10) if len(samples) > 1 else samples * 9
    return Timing(engine, rows, statistics.median(samples), q[0], q[-1], len(samples))


# Peak RSS is read in the child (VmHWM): the parent's ru_maxrss survives fork + exec and would be counted.
_PEAK = """
import atexit, sys
def _peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("EDGECLF_PEAK_KB=" + line.split()[1] + "\\n")
atexit.register(_peak)
"""


def _measure(code: str, stdin: bytes = b"") -> dict[str, float]:
    """Wall time and peak RSS of one fresh Python process running code."""
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-W", "ignore", "-c", _PEAK + code], input=stdin, capture_output=True)
    wall = time.perf_counter() - t
    err = p.stderr.decode(errors="replace")
    peak = [ln.split("=", 1)[1] for ln in err.splitlines() if ln.startswith("EDGECLF_PEAK_KB=")]
    if p.returncode != 0 or not peak:
        raise RuntimeError(f"cold-start run failed ({p.returncode}): {err.strip().splitlines()[-1:]}")
    return {"wall_s": wall, "peak_rss_mb": int(peak[0]) / 1024}


def cold_start(folder: Path, report: BenchReport, repeats: int = 3) -> None:
    f = str(folder)
    manifest = Manifest.read(folder)[0]
    n_feat = len(manifest.features)
    row = ",".join(["0.0"] * n_feat)
    header = ",".join(manifest.feature_names)
    cases = {
        "runtime (import + load + 1 row)":
            f"from edgeclf.runtime import Classifier; Classifier.load({f!r}).predict_proba([[{row}]])",
        "edgeclf predict (CLI, 1 row)":
            f"sys.argv = ['edgeclf', 'predict', {f!r}, '-']; from edgeclf.cli.main import console; console()",
    }
    try:
        import torch  # noqa: F401

        ts = str(folder / TORCHSCRIPT.file)
        cases["torch + TorchScript (import + load + 1 row)"] = (
            f"import torch; m = torch.jit.load({ts!r}); m(torch.zeros(1, {n_feat}))")
    except ImportError:
        report.notes.append("torch is not installed: no torch cold start")
    for name, code in cases.items():
        runs = [_measure(code, f"{header}\n{row}\n".encode()) for _ in range(repeats)]
        report.cold_start[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def run_bench(folder: Path, rows: Sequence[int], threads: int, cold: bool = True, device: str = "cpu") -> BenchReport:
    report = BenchReport(str(folder), threads, machine_info(threads))
    throughput(Path(folder), rows, threads, report, device)
    if cold:
        cold_start(Path(folder), report)
    return report
