"""File bytes and 1-, 64- and 1,024-row latency of the ExecuTorch programs next to the other formats, per task, in
one run (docs/benchmarks.md):

    .venv/bin/python scripts/bench_pte.py [TASK ...]

Engines, each on the same float32 rows, probabilities out: `pte-xnnpack` (model.pte through executorch.runtime,
chunks of its fixed batch 64, the last one zero-padded), `pte-portable` (model.portable.pte, batch 1, one call per
row), `onnx` (the Classifier: numpy + onnxruntime), `torchscript` (torch.jit.load, one call at any batch) and
`c-header` (model.h compiled with gcc -O2, one call per row, timed inside that program). The Python engines take
turns in blocks (bench.measure.time_side_by_side); the C program runs its own interleaved-free loop. Where the
committed artifacts have no .pte yet, the programs are written into a temporary copy first.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np

from edgeclf.bench.measure import machine_info, time_side_by_side
from edgeclf.export.parity import run_chunked
from edgeclf.runtime import Classifier, Manifest
from edgeclf.runtime.manifest import FileEntry

ROOT = Path(__file__).resolve().parents[1]
ROWS = (1, 64, 1024)

C_BENCH = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "model.h"
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static int cmp(const void *a, const void *b) {
    double d = *(const double *)a - *(const double *)b;
    return (d > 0) - (d < 0);
}
int main(int argc, char **argv) {
    int n = atoi(argv[1]), reps = atoi(argv[2]), r, i, j;
    float *x = malloc(sizeof(float) * n * EDGECLF_N_FEATURES), p[EDGECLF_N_CLASSES];
    double *t = malloc(sizeof(double) * reps), sink = 0;
    for (i = 0; i < n * EDGECLF_N_FEATURES; i++) x[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    for (r = 0; r < reps; r++) {
        double t0 = now();
        for (i = 0; i < n; i++) {
            edgeclf_predict_proba(x + i * EDGECLF_N_FEATURES, p);
            for (j = 0; j < EDGECLF_N_CLASSES; j++) sink += p[j];
        }
        t[r] = now() - t0;
    }
    qsort(t, reps, sizeof(double), cmp);
    printf("%.9g %g\n", t[reps / 2], sink);
    return 0;
}
"""


def programs(task: str, tmp: Path) -> tuple[Path, list[FileEntry]]:
    """The committed artifact's .pte entries, or, where it has none yet, both programs written into a copy."""
    from edgeclf.export import pte

    folder = ROOT / "artifacts" / task
    entries = Manifest.read(folder)[0].files_of(pte.FORMAT)
    if entries:
        return folder, entries
    from edgeclf.export.subject import from_trained
    from edgeclf.train.checkpoint import load_checkpoint

    shutil.copytree(folder, tmp / task)
    s = from_trained(load_checkpoint(tmp / task))
    return tmp / task, pte.write_programs(tmp / task, s.model, s.n_features)


def c_header_seconds(folder: Path, n: int, tmp: Path) -> float:
    src, exe = tmp / "bench.c", tmp / f"bench_{folder.name}"
    src.write_text(C_BENCH)
    if not exe.exists():
        subprocess.run(["gcc", "-std=c99", "-O2", f"-I{folder}", str(src), "-lm", "-o", str(exe)], check=True)
    reps = max(5, min(2001, 200_000 // n))
    out = subprocess.run([str(exe), str(n), str(reps)], capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def bench_task(task: str, tmp: Path) -> list[str]:
    import torch

    from edgeclf.export import pte
    from edgeclf.export.checks import torch_runner

    torch.set_num_threads(1)  # the other engines run on one thread each; torch's pool spins against them on 2 cores
    from edgeclf.export.formats import load_torchscript

    folder, entries = programs(task, tmp)
    m, _ = Manifest.read(folder)
    clf = Classifier.load(ROOT / "artifacts" / task)
    xnn, por = (next(e for e in entries if e.details["backend"] == b) for b in (pte.XNNPACK, pte.PORTABLE))
    engines = {"pte-xnnpack": (partial(run_chunked, pte.runner(folder / xnn.path), batch=xnn.batch_size), xnn.bytes),
               "pte-portable": (partial(run_chunked, pte.runner(folder / por.path), batch=por.batch_size), por.bytes),
               "onnx": (clf.predict_proba, sum(e.bytes for e in m.onnx_files)),
               "torchscript": (torch_runner(load_torchscript(folder / "model.torchscript.pt")),
                               (folder / "model.torchscript.pt").stat().st_size)}
    lines = []
    times: dict[str, dict[int, float]] = {e: {} for e in [*engines, "c-header"]}
    with torch.inference_mode():
        for n in ROWS:
            x = np.random.default_rng(n).uniform(-1, 1, (n, len(m.features))).astype(np.float32)
            calls = {name: partial(fn, x) for name, (fn, _) in engines.items()}
            for t in time_side_by_side(calls, n):
                times[t.engine][n] = t.median_s
            times["c-header"][n] = c_header_seconds(folder, n, tmp)
    sizes = {name: b for name, (_, b) in engines.items()}
    c = next(iter(m.files_of("c")), None)
    sizes["c-header"] = int(c.details.get("flash_bytes", 0)) if c else 0
    for name in times:
        cells = " | ".join(f"{times[name][n] * 1e6:>10.1f}" for n in ROWS)
        lines.append(f"| {task:<13} | {name:<12} | {sizes[name]:>9,} | {cells} |")
    return lines


def main(argv: list[str]) -> None:
    tasks = argv or sorted(p.parent.name for p in (ROOT / "artifacts").glob("*/manifest.json"))
    info = machine_info(threads=0)
    print(f"machine: {info['cpu']}, {info['cores']} cores; python {info['python']}, onnxruntime {info['onnxruntime']}")
    print("| task | engine | bytes | 1 row us | 64 rows us | 1,024 rows us |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench-pte-") as tmp:
        for task in tasks:
            for line in bench_task(task, Path(tmp)):
                print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
