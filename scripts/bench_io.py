"""Streaming scoring against the pyarrow I/O floor, side by side in one run, each case in its own subprocess
(throughput and peak RSS), plus the Dask engine with 1 and 2 worker processes, and the start-up of a one-row
predict in fresh processes.

    .venv/bin/python scripts/bench_io.py --rows 5000000            # prints a table
    .venv/bin/python scripts/bench_io.py --rows 20000000 --repeat 3 --startup 15 --json /tmp/bench_io.json
    .venv/bin/python scripts/bench_io.py --rows 0 --startup 15     # start-up only

The floor reads the same file with the same pyarrow reader and options and writes an output of the same shape
(a label column; with probabilities two float32 columns) with the same writer, but runs no model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import pyarrow as pa, pyarrow.compute as pc, pyarrow.csv as pcsv, pyarrow.parquet as pq
case, art, inp, out = sys.argv[1:5]
t0 = time.perf_counter()
if case == "edgeclf":
    from edgeclf.scale.files import score_files
    proba = inp.endswith(".parquet")
    rows = score_files(art, [inp], out, proba=proba, overwrite=True).rows
else:  # the floor: same reader and writer, same output shape, no model
    from edgeclf.scale.files import DEFAULT_BATCH_ROWS
    from edgeclf.tables.sources import csv_options, parquet_file
    from edgeclf.scale.sinks import Writer
    classes = pa.array(["outer", "inner"])
    if inp.endswith(".csv"):
        reader = pcsv.open_csv(inp, **csv_options(["x1", "x2"], [], max(1 << 20, DEFAULT_BATCH_ROWS * 24)))
        schema = pa.schema([("label", pa.string())])
    else:
        reader = parquet_file(inp).iter_batches(batch_size=DEFAULT_BATCH_ROWS, columns=["x1", "x2"])
        schema = pa.schema([("label", pa.string()), ("proba_outer", pa.float32()), ("proba_inner", pa.float32())])
    writer = Writer("csv" if out.endswith(".csv") else "parquet", out, schema)
    rows = 0
    for b in reader:
        label = pc.take(classes, pc.cast(pc.greater(b.column("x1"), 0), pa.int8()))
        cols = [label] + ([b.column("x1").cast(pa.float32()), b.column("x2").cast(pa.float32())] if len(schema) > 1 else [])
        writer.write(pa.RecordBatch.from_arrays(cols, schema=schema))
        rows += b.num_rows
    writer.close()
seconds = time.perf_counter() - t0
peak = int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]) / 1024
print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak}))
"""

DASK_CHILD = r"""
import json, sys, time
from distributed import LocalCluster
from edgeclf.scale.dask import score_dask
art, glob, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
    # the first job on a fresh cluster also pays each worker's imports and model load (once per worker): timed
    # apart, then the same job again on the warm workers
    t0 = time.perf_counter()
    score_dask(art, glob, out + ".cold", proba=True, scheduler=cluster.scheduler_address, overwrite=True)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = score_dask(art, glob, out, proba=True, scheduler=cluster.scheduler_address, overwrite=True)
    print(json.dumps({"rows": r.rows, "seconds": time.perf_counter() - t0, "cold_seconds": cold}))
"""


def make_inputs(folder: Path, rows: int, parts: int) -> tuple[Path, Path, str]:
    """One CSV and one Parquet file of `rows` rows (id, x1, x2), and the same rows as `parts` Parquet files,
    written a chunk at a time (bounded memory)."""
    rng = np.random.default_rng(0)
    csv_path, pq_path = folder / "in.csv", folder / "in.parquet"
    (folder / "parts").mkdir()
    schema = pa.schema([("id", pa.int64()), ("x1", pa.float32()), ("x2", pa.float32())])
    per_part = -(-rows // parts)
    with pcsv.CSVWriter(csv_path, schema) as cw, pq.ParquetWriter(pq_path, schema) as pw:
        for i in range(parts):
            lo, hi = i * per_part, min(rows, (i + 1) * per_part)
            with pq.ParquetWriter(folder / "parts" / f"part{i:03d}.parquet", schema) as part:
                for start in range(lo, hi, 1_000_000):
                    n = min(1_000_000, hi - start)
                    x = rng.uniform(-1.2, 1.2, (n, 2)).astype(np.float32)  # (n, 2)
                    t = pa.table({"id": np.arange(start, start + n), "x1": x[:, 0], "x2": x[:, 1]}, schema=schema)
                    cw.write_table(t)
                    pw.write_table(t)
                    part.write_table(t)
    return csv_path, pq_path, str(folder / "parts" / "*.parquet")


# One row from stdin in a fresh process, as a user's shell starts it; peak RSS read in the child at exit (atexit:
# the edgeclf console runs the handlers before its quick exit)
PEAK = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("PEAK_KB=" + [l for l in open("/proc/self/status")
                                                        if l.startswith("VmHWM")][0].split()[1] + "\\n"))
"""
STARTUP = {
    "python (no imports)": "pass",
    "import numpy + onnxruntime": "import numpy, onnxruntime",
    "runtime: import + load + 1 row": "from edgeclf.runtime import Classifier\n"
                                      "Classifier.load(sys.argv[1]).predict_proba([[0.5, 0.2]])",
    "edgeclf predict ARTIFACT - (1 row)": "sys.argv = ['edgeclf', 'predict', sys.argv[1], '-']\n"
                                          "from edgeclf.cli.main import console\nconsole()",
}


def startup(artifact: str, repeats: int) -> None:
    """Each case `repeats` times, interleaved; wall time of the whole process (start to exit) and peak RSS."""
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in STARTUP}
    for _ in range(repeats):
        for name, code in STARTUP.items():
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", PEAK + code, artifact], input=b"x1,x2\n0.5,0.2\n",
                                  capture_output=True)
            wall = time.perf_counter() - t
            kb = [ln for ln in done.stderr.decode().splitlines() if ln.startswith("PEAK_KB=")]
            if done.returncode != 0 or not kb:
                raise SystemExit(f"start-up case {name!r} failed: {done.stderr.decode().strip()[-300:]}")
            runs[name].append((wall, int(kb[0].split("=")[1]) / 1024))
    print(f"start-up, {repeats} interleaved runs each")
    print(f"{'case':<40} {'median s':>9} {'best s':>7} {'worst s':>8} {'peak MB':>8}")
    for name, r in runs.items():
        walls = [w for w, _ in r]
        print(f"{name:<40} {statistics.median(walls):>9.3f} {min(walls):>7.3f} {max(walls):>8.3f} "
              f"{max(m for _, m in r):>8.0f}")


def run(code: str, *args: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed: {done.stderr.strip().splitlines()[-1:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--artifact", default=str(ROOT / "artifacts" / "circles"))
    ap.add_argument("--parts", type=int, default=16, help="Parquet parts for the dask engine")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each case, interleaved (floor, edgeclf, floor, ...); the table shows the fastest "
                         "and the median: on a shared machine the others' load comes and goes")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--startup", type=int, default=0, metavar="N",
                    help="also time one row from stdin in fresh processes, N interleaved runs of each case")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    if args.startup:
        startup(args.artifact, args.startup)
    if args.rows <= 0:
        return
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_io.") as tmp:
        folder = Path(tmp)
        csv_path, pq_path, parts = make_inputs(folder, args.rows, args.parts)
        for _ in range(args.repeat):
            for name, inp, out in [("CSV -> CSV labels", csv_path, "out.csv"),
                                   ("Parquet -> Parquet proba", pq_path, "out.parquet")]:
                for case in ("floor", "edgeclf"):
                    keep_best(results, f"{name} | {case}",
                              run(CHILD, case, args.artifact, str(inp), str(folder / f"{case}.{out}")))
            for n in () if args.no_dask else (1, 2):
                keep_best(results, f"dask Parquet -> Parquet proba | {n} worker(s)",
                          run(DASK_CHILD, args.artifact, parts, str(folder / f"dask{n}"), str(n)))
    print_table(results, args.rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": args.rows, "machine": machine(), "results": results}, indent=2))


def keep_best(results: dict[str, dict[str, Any]], key: str, r: dict[str, float]) -> None:
    """The fastest run's figures, and every run's seconds (for the median)."""
    runs = [*results.get(key, {}).get("all_seconds", []), r["seconds"]]
    if key not in results or r["seconds"] < results[key]["seconds"]:
        results[key] = dict(r)
    results[key]["all_seconds"] = runs


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}"


def print_table(results: dict[str, dict[str, Any]], rows: int) -> None:
    """Best of the runs (seconds, M rows/s, ratio to the group's first case), then the medians' ratio."""
    print(f"{rows:,} rows on {machine()}")
    print(f"{'case':<52} {'seconds':>8} {'M rows/s':>9} {'peak MB':>8} {'vs ref':>7} {'median s':>9} {'vs ref':>7}")
    ref: dict[str, tuple[float, float]] = {}
    for key, r in results.items():
        group, case = key.split(" | ")
        med = statistics.median(r["all_seconds"])
        ref.setdefault(group, (r["seconds"], med))
        best_ratio, med_ratio = ref[group][0] / r["seconds"], ref[group][1] / med
        peak = f"{r['peak_mb']:.0f}" if "peak_mb" in r else "-"
        cold = f"  (first job on fresh workers: {r['cold_seconds']:.2f} s)" if "cold_seconds" in r else ""
        print(f"{key:<52} {r['seconds']:>8.2f} {r['rows'] / r['seconds'] / 1e6:>9.2f} {peak:>8} {best_ratio:>6.2f}x "
              f"{med:>9.2f} {med_ratio:>6.2f}x{cold}")


if __name__ == "__main__":
    main()
