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

from edgeclf.artifact.store import CARD
from edgeclf.export.pipeline import verify_artifact
from edgeclf.report.build import PICTURES
from edgeclf.runtime import Classifier, Manifest
from edgeclf.train.checkpoint import load_checkpoint

SIZES = [0, 1, 2, 63, 64, 65, 1000, 1024, 1500, 16384, 20000, 40000]
KILLS = int(os.environ.get("EDGECLF_KILLS", "20"))  # docs/reliability.md's figures came from a larger run


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


def kill_at_random(cmd: list[str], delay: float) -> bool:
    """Start cmd, SIGKILL it after delay seconds; True if it was still running when killed."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    alive = p.poll() is None
    if alive:
        os.kill(p.pid, signal.SIGKILL)
    p.wait()
    return alive


@pytest.mark.slow
def test_sigkill_during_export_and_train_leaves_a_clean_folder(tmp_path):
    root = tmp_path
    shutil.copytree(ARTIFACTS / "circles", root / "circles")
    previous = snapshot(root / "circles")
    rng = random.Random(1234)
    t = time.perf_counter()
    subprocess.run(export_cmd(root, (3, 5)), check=True, capture_output=True)  # one full run: how long it takes
    export_s = time.perf_counter() - t
    shutil.rmtree(root / "circles")
    shutil.copytree(ARTIFACTS / "circles", root / "circles")
    train = [sys.executable, "-m", "edgeclf.cli", "train", "circles", "--epochs", "300", "--out", str(root), "--quiet"]
    killed = {"export": 0, "train": 0}
    for i in range(KILLS):
        stage = "export" if i % 5 < 3 else "train"
        cmd = export_cmd(root, (3, 5)) if stage == "export" else train
        killed[stage] += kill_at_random(cmd, rng.uniform(0.05, export_s))
        folder = root / "circles"
        now = snapshot(folder)
        if now == previous:
            continue  # killed before the swap: the previous version, untouched
        if stage == "export":
            assert_consistent(folder)  # a complete new export
        else:
            load_checkpoint(folder, "circles")  # a complete new training (its stale exports dropped)
            assert set(now) == {"checkpoint.pt", "metrics.json"}
        shutil.rmtree(folder)  # back to the reference version for the next round
        shutil.copytree(ARTIFACTS / "circles", folder)
    assert_consistent(root / "circles")
    assert killed["export"] + killed["train"] >= KILLS // 2, killed  # most runs really were killed mid-way
    print(f"\nSIGKILL: {KILLS} runs, {killed} killed mid-run, every folder verified clean")


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
