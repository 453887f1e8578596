"""Wall time of `edgeclf export` and `edgeclf verify` in fresh processes, next to the imports they cannot avoid.

    .venv/bin/python scripts/bench_export.py [--rounds 3] [--tasks circles,digits] [--format c]
        [--bin before=/path/to/old/.venv/bin/edgeclf --bin after=.venv/bin/edgeclf]

Each round runs `python -c "import torch, onnx, onnxscript, onnxruntime"` (the floor) with each build's Python,
then, per task and build, the export of a fresh copy of the committed folder and `verify` of it, interleaved so a
busy machine slows every build alike. Prints best and median of the rounds per command, and best minus the floor.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = "import torch, onnx, onnxscript, onnxruntime"


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def one_round(builds: dict[str, Path], tasks: list[str], edge: list[str], tmp: Path,
              times: dict[tuple[str, str], list[float]]) -> None:
    for label, exe in builds.items():
        times.setdefault((label, "imports"), []).append(timed([str(exe.parent / "python"), "-c", FLOOR]))
    for task in tasks:
        for label, exe in builds.items():
            out = tmp / label
            dest = out / task
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(ROOT / "artifacts" / task, dest)
            times.setdefault((label, f"export {task}"), []).append(
                timed([str(exe), "export", task, "--out", str(out), *edge]))
            times.setdefault((label, f"verify {task}"), []).append(timed([str(exe), "verify", str(dest)]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tasks", default="circles,digits")
    ap.add_argument("--format", action="append", default=[], help="edge formats to export too (e.g. c)")
    ap.add_argument("--bin", action="append", default=[], help="LABEL=path of an edgeclf executable")
    args = ap.parse_args()
    builds = dict(b.split("=", 1) for b in args.bin) or {"this": str(Path(sys.executable).parent / "edgeclf")}
    exes = {label: Path(p).absolute() for label, p in builds.items()}
    edge = [a for f in args.format for a in ("--format", f)]
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            one_round(exes, args.tasks.split(","), edge, Path(tmp), times)
    print("| build | command | best s | median s | best - imports s |\n|---|---|---:|---:|---:|")
    for (label, name), ts in times.items():
        floor = min(times[(label, "imports")])
        print(f"| {label} | {name} | {min(ts):.2f} | {statistics.median(ts):.2f} | {min(ts) - floor:+.2f} |")


if __name__ == "__main__":
    main()
