"""Pictures and model cards: present, valid, small, deterministic, and the card's numbers are the manifest's."""

from __future__ import annotations

import json
import re
import shutil
import struct

import pytest
from conftest import ARTIFACTS, TASKS, run_cli, snapshot

from edgeclf.export.card import CARD, IMAGES, model_card
from edgeclf.runtime import Manifest

SIZES = {"boundary.png": (520, 460), "parity.png": (1260, 400), "training.png": (1000, 360)}


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("image", IMAGES)
def test_committed_images(task, image):
    data = (ARTIFACTS / task / image).read_bytes()
    assert png_size(data) == SIZES[image]
    assert 5_000 < len(data) <= 200_000


@pytest.mark.parametrize("task", TASKS)
def test_committed_card_is_generated_from_manifest(task):
    m, _ = Manifest.read(ARTIFACTS / task)
    metrics = json.loads((ARTIFACTS / task / "metrics.json").read_text())
    card = (ARTIFACTS / task / CARD).read_text()
    assert card == model_card(m, metrics)  # nothing typed by hand
    assert f"| test | {metrics['test_accuracy']:.2%} |" in card
    for f in m.files:
        assert f"`{f.sha256}`" in card and f"{f.bytes:,}" in card
    rows = re.findall(r"^\| `(\S+)` \| ([\d,]+) \| (\S+) \| (\S+) \| (\S+) \| (PASS|FAIL) \|$", card, re.M)
    assert {r[0] for r in rows} == {f.path for f in m.files}
    for name, n, logit_diff, proba_diff, agree, verdict in rows:
        p = m.parity["files"][name]
        assert int(n.replace(",", "")) == p["rows"] and verdict == ("PASS" if p["passed"] else "FAIL")
        assert float(logit_diff) == float(f"{p['outputs']['logits']['max_abs']:.1e}")
        assert float(proba_diff) == float(f"{p['outputs']['probabilities']['max_abs']:.1e}")
        assert agree == f"{p['label_agreement']:.2%}"
    for image in IMAGES:
        assert f"]({image})" in card


def test_plot_regenerates_identically(tmp_path):
    shutil.copytree(ARTIFACTS / "moons", tmp_path / "a" / "moons")
    shutil.copytree(ARTIFACTS / "moons", tmp_path / "b" / "moons")
    for side in ("a", "b"):
        res = run_cli("plot", tmp_path / side / "moons")
        assert res.exit_code == 0, res.output
    a, b = snapshot(tmp_path / "a" / "moons"), snapshot(tmp_path / "b" / "moons")
    assert a == b
    assert {k for k in a if k.endswith(".png")} == set(IMAGES)


def test_plot_refuses_unexported_folder(tmp_path):
    (tmp_path / "x").mkdir()
    res = run_cli("plot", tmp_path / "x")
    assert res.exit_code == 1 and "no manifest.json" in res.output and "Traceback" not in res.output
