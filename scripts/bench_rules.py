"""The runtime's thread and input-check rules, measured side by side in one process (docs/benchmarks.md).

    .venv/bin/python scripts/bench_rules.py threads     # raw sessions, 2 intra-op threads vs 1, at 1024-16384 rows
    .venv/bin/python scripts/bench_rules.py rules       # the Classifier before/after this round's rules vs raw

`threads`: for each artifact and batch size, a session with intra_op_num_threads=2 against one with 1 (the same
file): where onnxruntime's own pool pays. `rules`: a raw session.run (intra_op = 2, as a hand-written script opens
it) against the Classifier with round two's first rules (intra-op sessions from 1024 rows, our thread pool from
32,768, np.isfinite as the input check; emulated on the current code) and with the current ones.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from functools import partial
from pathlib import Path

import numpy as np

import edgeclf.runtime.classifier as C
import edgeclf.runtime.schedule as S
from edgeclf.bench.measure import INPUT_NAME, PROBABILITIES, raw_sessions, time_side_by_side
from edgeclf.runtime import Classifier
from edgeclf.runtime.inputs import MEDIUM_CHECK, SMALL_CHECK
from edgeclf.runtime.manifest import Manifest

ROOT = Path(__file__).resolve().parents[1] / "artifacts"


def threads_table(tasks: list[str]) -> None:
    print(f"{'task':<14} {'rows':>6} {'1 thread us':>12} {'2 threads us':>13} {'2 vs 1':>7}")
    for task in tasks:
        man = Manifest.read(ROOT / task)[0]
        two, one = raw_sessions(ROOT / task, man, 2)[0], raw_sessions(ROOT / task, man, 1)[0]
        for n in (1024, 4096, 16384):
            x = np.random.default_rng(0).uniform(-1, 1, (n, len(man.features))).astype(np.float32)
            t = {r.engine: r.median_s for r in time_side_by_side(
                {"two": partial(two[n].run, [PROBABILITIES], {INPUT_NAME: x}),
                 "one": partial(one[n].run, [PROBABILITIES], {INPUT_NAME: x})}, n)}
            print(f"{task:<14} {n:>6} {t['one'] * 1e6:>12.0f} {t['two'] * 1e6:>13.0f} {t['one'] / t['two']:>6.2f}x",
                  flush=True)


def _old_check(arr: np.ndarray) -> None:
    if arr.size <= SMALL_CHECK:
        ok = math.isfinite(sum(arr.ravel().tolist()))
    elif arr.size <= MEDIUM_CHECK:
        ok = bool(np.isfinite(arr).all())
    else:
        ok = math.isfinite(arr.sum(dtype=np.float64))
    assert ok


def rules_table(tasks: list[str], ns: list[int]) -> None:
    print(f"{'task':<14} {'rows':>7} {'raw us':>9} {'before us':>10} {'after us':>9} {'before vs raw':>14} "
          f"{'after vs raw':>13}")
    logs: dict[int, list[tuple[float, float]]] = {n: [] for n in ns}
    for task in tasks:
        after = Classifier.load(ROOT / task, threads=2)
        rule = C.uses_intra_op
        C.uses_intra_op = lambda b, p: b >= 1024  # round two's first rule
        try:
            before = Classifier.load(ROOT / task, threads=2)
        finally:
            C.uses_intra_op = rule
        before._schedule.parallel_min_rows = S.PARALLEL_MIN_ROWS
        fixed, dyn = raw_sessions(ROOT / task, after.manifest, 2)
        for n in ns:
            m = after.manifest
            x = np.random.default_rng(0).uniform(m.domain.low, m.domain.high, (n, after.n_features_in_)).astype(np.float32)
            sess = fixed.get(n, dyn)
            t = {r.engine: r.median_s for r in time_side_by_side({
                "raw": partial(sess.run, [PROBABILITIES], {INPUT_NAME: x}),
                "before": lambda x=x, clf=before: (_old_check(x), clf.predict_proba(x, True)),
                "after": partial(after.predict_proba, x)}, n)}
            logs[n].append((t["raw"] / t["before"], t["raw"] / t["after"]))
            print(f"{task:<14} {n:>7} {t['raw'] * 1e6:>9.1f} {t['before'] * 1e6:>10.1f} {t['after'] * 1e6:>9.1f} "
                  f"{t['raw'] / t['before']:>13.2f}x {t['raw'] / t['after']:>12.2f}x", flush=True)
    print("geometric mean over the tasks, Classifier vs raw (above 1: the Classifier is faster)")
    for n, r in logs.items():
        gb = math.exp(statistics.fmean(math.log(b) for b, _ in r))
        ga = math.exp(statistics.fmean(math.log(a) for _, a in r))
        print(f"  {n:>7} rows: before {gb:.2f}x, after {ga:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["threads", "rules"])
    ap.add_argument("--tasks", default=",".join(sorted(p.parent.name for p in ROOT.glob("*/manifest.json"))))
    ap.add_argument("--rows", default="1,64,1024,4096,16384,100000")
    args = ap.parse_args()
    tasks = args.tasks.split(",")
    if args.what == "threads":
        threads_table(tasks)
    else:
        rules_table(tasks, [int(v) for v in args.rows.split(",")])
    sys.stdout.flush()


if __name__ == "__main__":
    main()
