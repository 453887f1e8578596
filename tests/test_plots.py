"""Pictures and model cards: present, valid, small, deterministic, and the card's numbers are the manifest's."""

from __future__ import annotations

import json
import re
import shutil
import struct

import pytest
from helpers import ARTIFACTS, TASKS, run_cli, snapshot

from edgeclf.artifact.store import CARD
from edgeclf.report.card import model_card
from edgeclf.runtime import Manifest

SIZES = {"boundary.png": (520, 460), "parity.png": (1260, 400), "training.png": (1000, 360),
         "calibration.png": (1000, 380), "confusion.png": (1500, 460)}


def pictures_of(task: str) -> list[str]:
    two_d = len(Manifest.read(ARTIFACTS / task)[0].features) == 2
    return ["boundary.png" if two_d else "confusion.png", "calibration.png", "training.png"]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("task", TASKS)
def test_committed_images(task):
    for image in pictures_of(task):
        data = (ARTIFACTS / task / image).read_bytes()
        assert png_size(data) == SIZES[image]
        assert 5_000 < len(data) <= 200_000
    # parity.png shows what one CPU computed: drawn on request, never committed
    assert not (ARTIFACTS / task / "parity.png").exists()


@pytest.mark.parametrize("task", TASKS)
def test_committed_card_is_generated_from_manifest(task):
    m, _ = Manifest.read(ARTIFACTS / task)
    metrics = json.loads((ARTIFACTS / task / "metrics.json").read_text())
    card = (ARTIFACTS / task / CARD).read_text()
    assert card == model_card(m, metrics, pictures_of(task))  # nothing typed by hand
    assert f"Test accuracy {metrics['test_accuracy']:.2%}" in card
    for f in m.files:
        assert f"`{f.sha256[:16]}…`" in card and f"{f.bytes:,}" in card
    rows = re.findall(r"^\| `(\S+)` \| ([\d,]+) \| (PASS|FAIL) \|$", card, re.M)
    assert {r[0] for r in rows} == set(m.parity.files)
    for name, n, verdict in rows:
        p = m.parity.files[name]
        assert int(n.replace(",", "")) == p["rows"] and verdict == ("PASS" if p["passed"] else "FAIL")
    for sample, figures in metrics["calibration"].items():
        assert f"{figures['log_loss']:.4f} | {figures['brier']:.4f} | {figures['ece']:.4f} |" in card, sample
    for image in pictures_of(task):
        assert f"]({image})" in card


def test_plot_regenerates_identically(tmp_path):
    shutil.copytree(ARTIFACTS / "moons", tmp_path / "a" / "moons")
    shutil.copytree(ARTIFACTS / "moons", tmp_path / "b" / "moons")
    for side in ("a", "b"):
        res = run_cli("plot", tmp_path / side / "moons")
        assert res.exit_code == 0, res.output
    a, b = snapshot(tmp_path / "a" / "moons"), snapshot(tmp_path / "b" / "moons")
    assert a == b
    assert {k for k in a if k.endswith(".png")} == set(pictures_of("moons"))
    assert a == snapshot(ARTIFACTS / "moons")  # the committed pictures are what `edgeclf plot` draws


def test_plot_parity_on_request(tmp_path):
    shutil.copytree(ARTIFACTS / "blobs", tmp_path / "blobs")
    res = run_cli("plot", tmp_path / "blobs", "--parity")
    assert res.exit_code == 0, res.output
    assert png_size((tmp_path / "blobs" / "parity.png").read_bytes()) == SIZES["parity.png"]


def test_plot_refuses_unexported_folder(tmp_path):
    (tmp_path / "x").mkdir()
    res = run_cli("plot", tmp_path / "x")
    assert res.exit_code == 1 and "no manifest.json" in res.output and "Traceback" not in res.output
