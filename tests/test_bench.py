"""`edgeclf bench` smoke test (small N; timings are printed, never asserted) and fast-path correctness."""

from __future__ import annotations

import json

import numpy as np
from helpers import ALL_TASKS, ARTIFACTS, run_cli

from edgeclf.bench.measure import ENGINES
from edgeclf.runtime import Classifier


def test_bench_smoke(tmp_path):
    res = run_cli("bench", ARTIFACTS / "circles", "--rows", "1,100", "--threads", "2",
                  "--json", tmp_path / "b.json", "--chart", tmp_path / "b.png")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "b.json").read_text())
    cpu_engines = [e for e in ENGINES if e != "classifier-cuda"]
    assert {(t["engine"], t["rows"]) for t in data["timings"]} == {(e, n) for e in cpu_engines for n in (1, 100)}
    assert all(t["median_s"] > 0 and t["reps"] >= 5 for t in data["timings"])
    assert set(data["cold_start"]) == {"runtime (import + load + 1 row)", "edgeclf predict (CLI, 1 row)",
                                       "torch + TorchScript (import + load + 1 row)"}
    assert all(v["peak_rss_mb"] > 10 for v in data["cold_start"].values())
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "clf/eager" in res.output


def test_bench_bad_rows():
    res = run_cli("bench", ARTIFACTS / "circles", "--rows", "1,zero")
    assert res.exit_code == 2 and "'1,zero'" in res.output


def test_fast_paths_equal_simple_path():
    """Exact-batch runs, the thread pool, and chunk-wise casting all equal one-row-at-a-time results."""
    fast = Classifier.load(ARTIFACTS / "blobs", threads=2)
    simple = Classifier.load(ARTIFACTS / "blobs", threads=1)
    x = np.random.default_rng(3).uniform(-12, 12, (40_000, 2))
    rows = np.concatenate([simple.predict_proba(x[i:i + 1]) for i in range(0, 40_000, 997)])
    for n in (1, 64, 1024, 16384, 40_000):
        got = fast.predict_proba(x[:n])  # float64: cast chunk by chunk
        assert np.array_equal(got, simple.predict_proba(x[:n].astype(np.float32)))
        assert np.array_equal(got[::997], rows[: len(got[::997])])


def test_bench_all_summary_and_ratio_chart(tmp_path):
    res = run_cli("bench", "--all", "--out", ARTIFACTS, "--rows", "64", "--threads", "1",
                  "--json", tmp_path / "all.json", "--chart", tmp_path / "ratios.png")
    assert res.exit_code == 0, res.output
    summary = res.output[res.output.index("worst vs raw") - 300:]
    for task in ALL_TASKS:  # the multi-label task too: its probabilities are timed like any output
        assert f"\n{task} " in summary, task
    data = json.loads((tmp_path / "all.json").read_text())
    assert sorted(d["folder"].rsplit("/", 1)[-1] for d in data) == sorted(ALL_TASKS)
    assert all({t["engine"] for t in d["timings"]} >= {"classifier", "onnxruntime", "eager"} for d in data)
    assert (tmp_path / "ratios.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_needs_one_folder_or_all(tmp_path):
    for args in ((), (ARTIFACTS / "circles", "--all")):
        res = run_cli("bench", *args)
        assert res.exit_code == 2 and "give one FOLDER or --all" in res.output
    res = run_cli("bench", "--all", "--out", tmp_path)
    assert res.exit_code == 1 and "no artifact folder" in res.output and "Traceback" not in res.output


def test_bench_layouts_table():
    from edgeclf.bench.layouts import compare_layouts
    from edgeclf.bench.render import format_layouts

    rows = compare_layouts(ARTIFACTS / "blobs", batches=(1, 64))  # two rungs: one row-major, one feature-major
    manifest = json.loads((ARTIFACTS / "blobs" / "manifest.json").read_text())
    assert sorted({(r.layout, r.batch) for r in rows}) == sorted(
        (lay, b) for lay in ("as-traced", "row-major", "feature-major") for b in (1, 64))
    chosen = {r.batch: r.layout for r in rows if r.chosen}
    assert chosen == {f["batch_size"]: f["details"]["layout"] for f in manifest["files"]
                      if f["format"] == "onnx" and f["batch_size"] in (1, 64)} == {1: "row-major", 64: "feature-major"}
    assert all(r.max_abs_diff <= 1e-5 for r in rows)
    text = format_layouts(rows)
    assert text.count("blobs") == 2 and text.count("*") == 2 + 1  # one mark per batch size, plus the legend
