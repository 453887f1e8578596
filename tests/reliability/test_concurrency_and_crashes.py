"""Concurrency (threads sharing a Classifier, processes exporting one folder) and crash safety (SIGKILL)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import ARTIFACTS, snapshot

from edgeclf.artifact.store import CARD, staged_folder
from edgeclf.export.pipeline import verify_artifact
from edgeclf.report.build import PICTURES
from edgeclf.runtime import Classifier, Manifest
from edgeclf.train.checkpoint import load_checkpoint

SIZES = [0, 1, 2, 63, 64, 65, 1000, 1024, 1500, 16384, 20000, 40000]


def test_eight_threads_share_one_classifier():
    clf = Classifier.load(ARTIFACTS / "spirals", threads=2)
    rng = np.random.default_rng(0)
    pool = rng.uniform(-1.1, 1.1, (40000, 2)).astype(np.float32)
    serial = {(n, out): getattr(clf, f"predict_{out}")(pool[:n]) for n in SIZES for out in ("proba", "logits")}
    calls, failures = 1000, []

    def worker(seed: int) -> None:
        r = random.Random(seed)
        for _ in range(calls):
            n, out = r.choice(SIZES), ("proba" if r.random() < 0.8 else "logits")
            if not np.array_equal(getattr(clf, f"predict_{out}")(pool[:n]), serial[n, out]):
                failures.append((n, out))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def export_cmd(root: Path, sizes: tuple[int, ...]) -> list[str]:
    flags = [a for b in sizes for a in ("--batch-size", str(b))]
    return [sys.executable, "-m", "edgeclf.cli", "export", "circles", "--out", str(root), *flags]


def assert_consistent(folder: Path) -> set[str]:
    """The folder verifies clean and holds exactly the manifest's files plus checkpoint and metrics."""
    report = verify_artifact(folder)
    assert report, [str(r) for r in report.results]
    names = {p.name for p in folder.iterdir()} - {*PICTURES, CARD}  # pictures: present or dropped as stale
    assert names == {f.path for f in report.manifest.files} | {"checkpoint.pt", "metrics.json", "manifest.json"}
    return names


def test_two_processes_export_one_folder(tmp_path):
    shutil.copytree(ARTIFACTS / "circles", tmp_path / "circles")
    a = subprocess.Popen(export_cmd(tmp_path, (1, 64)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    b = subprocess.Popen(export_cmd(tmp_path, (2, 32)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert a.wait(timeout=300) == 0, a.stderr.read()
    assert b.wait(timeout=300) == 0, b.stderr.read()
    names = assert_consistent(tmp_path / "circles")
    onnx_files = {n for n in names if n.endswith(".onnx")}
    assert onnx_files in ({"model.b1.onnx", "model.b64.onnx"}, {"model.b2.onnx", "model.b32.onnx"})


# storage._pause_point windows: "staged" (every file written into the hidden staging folder), "before_swap"
# (staged files fsynced), "after_swap" (new version in place, the old one not yet deleted); "early" = mid-import
WINDOWS = ("early", "staged", "before_swap", "after_swap")
STAGES = ("export", "train")
ROUNDS = int(os.environ.get("EDGECLF_KILL_ROUNDS", "1"))  # each round kills every stage in every window once


def writer_cmd(root: Path, stage: str) -> list[str]:
    if stage == "export":
        return export_cmd(root, (2048,))  # one large batch: few parity calls
    return [sys.executable, "-m", "edgeclf.cli", "train", "circles", "--epochs", "20", "--out", str(root), "--quiet"]


def start_writer(root: Path, stage: str, window: str) -> tuple[subprocess.Popen, Path]:
    """Start a writer that pauses (sleeps) at `window`; the marker file appears when it gets there."""
    marker = root / "paused"
    env = {**os.environ, "EDGECLF_TEST_PAUSE": window, "EDGECLF_TEST_PAUSE_FILE": str(marker),
           "OMP_NUM_THREADS": "1"}  # eight writers share the cores: spinning thread pools would only slow them
    with open(root / "stderr.log", "wb") as err:
        p = subprocess.Popen(writer_cmd(root / "art", stage), stdout=subprocess.DEVNULL, stderr=err, env=env)
    return p, marker


def paused(p: subprocess.Popen, marker: Path, window: str, root: Path) -> bool:
    """True once p sits in its window ("early": at once, while it is still importing)."""
    if window == "early" or marker.exists():
        return True
    assert p.poll() is None, f"writer exited ({p.returncode}) before {window}: {(root / 'stderr.log').read_text()}"
    return False


def kill(p: subprocess.Popen) -> None:
    assert p.poll() is None, "the writer finished before it was killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def leftovers(folder: Path) -> list[Path]:
    return sorted(folder.parent.glob(f".{folder.name}.new-*"))


def assert_old_version(folder: Path, previous: dict[str, bytes]) -> None:
    assert snapshot(folder) == previous  # bit for bit: nothing of the killed writer leaked in
    Classifier.load(folder)
    load_checkpoint(folder, "circles")


def assert_new_version(folder: Path, stage: str) -> None:
    load_checkpoint(folder, "circles")
    if stage == "export":
        assert {f.batch_size for f in Manifest.read(folder)[0].onnx_files} == {2048}
        assert_consistent(folder)
        Classifier.load(folder)
    else:  # a new training drops the old exports: a checkpoint and its metrics, nothing else
        assert set(snapshot(folder)) == {"checkpoint.pt", "metrics.json"}


def check_after_kill(folder: Path, previous: dict[str, bytes], stage: str, window: str) -> None:
    left = leftovers(folder)
    if window == "after_swap":
        assert_new_version(folder, stage)
        assert len(left) == 1 and snapshot(left[0]) == previous  # the swapped-out old version, not yet deleted
    else:
        assert_old_version(folder, previous)
    if window in ("staged", "before_swap"):  # the killed writer's complete staging folder
        assert len(left) == 1
        staged = set(snapshot(left[0]))
        assert {"checkpoint.pt", "metrics.json"} <= staged and ("manifest.json" in staged) == (stage == "export")
    current = snapshot(folder)
    with staged_folder(folder, keep=current):  # the next writer (here republishing the same files)...
        pass
    assert leftovers(folder) == [] and snapshot(folder) == current  # ...removes the killed writer's leftovers


@pytest.mark.slow
def test_sigkill_in_each_write_window_leaves_old_or_new_version(tmp_path):
    """Every (stage, window) writer runs at once, each on its own copy, and is killed in its window."""
    previous = snapshot(ARTIFACTS / "circles")
    runs = [(r, s, w) for r in range(ROUNDS) for s in STAGES for w in WINDOWS]
    started = []
    for r, stage, window in runs:
        root = tmp_path / f"{r}-{stage}-{window}"
        shutil.copytree(ARTIFACTS / "circles", root / "art" / "circles")
        started.append((root, stage, window, *start_writer(root, stage, window)))
    counts: dict[str, int] = {w: 0 for w in WINDOWS}
    deadline = time.monotonic() + 900
    try:
        while started:  # kill each writer as soon as it pauses, whatever the order they get there
            assert time.monotonic() < deadline, f"writers never reached their windows: {started}"
            ready = [run for run in started if paused(run[3], run[4], run[2], run[0])]
            for run in ready:
                root, stage, window, p, _ = run
                kill(p)
                check_after_kill(root / "art" / "circles", previous, stage, window)
                counts[window] += 1
                started.remove(run)
            time.sleep(0.02)
    finally:
        for *_, p, _ in started:
            p.kill()
            p.wait()
    assert sum(counts.values()) == len(runs)
    print(f"\nSIGKILL per window (export + train): {counts}; each left the old or the new version, loadable")


def test_swap_keeps_no_partial_folder_after_kill(tmp_path):
    """A killed writer leaves at most a hidden staging folder, which the next writer removes."""
    shutil.copytree(ARTIFACTS / "moons", tmp_path / "moons")
    stale = tmp_path / ".moons.new-dead"
    stale.mkdir()
    (stale / "model.b1.onnx").write_bytes(b"half")
    from edgeclf.export.pipeline import export_artifact

    export_artifact(tmp_path / "moons", batch_sizes=(1,))
    assert not stale.exists()
    assert Manifest.read(tmp_path / "moons")[0].onnx_files[0].batch_size == 1
