"""Pictures and model cards: present, valid, small, deterministic, and the card's numbers are the manifest's."""

from __future__ import annotations

import json
import re
import shutil
import struct

import matplotlib.image as mpimg
import numpy as np
import pytest
from helpers import ARTIFACTS, TASKS, TOY_TASKS, run_cli, snapshot
from matplotlib.colors import to_rgb

from edgeclf.artifact.store import CARD
from edgeclf.export.geometry import PICTURE_GRID as GRID
from edgeclf.export.geometry import grid_points
from edgeclf.export.subject import from_trained
from edgeclf.report.card import model_card
from edgeclf.report.plots import COLORS
from edgeclf.runtime import Classifier, Manifest
from edgeclf.train.checkpoint import load_checkpoint

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


# --- what the pictures show: pixels read back and compared with what the runtime computes ----------------------
TOL = 0.02  # per RGB channel in [0, 1]: ~5/255, far below the gap between any two colours compared here
DECADES = [0.0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1.0]  # the parity picture's colour bins


def rgb(path) -> np.ndarray:
    return mpimg.imread(str(path))[..., :3].astype(np.float64)  # (H, W, 3) in [0, 1]


def _runs(idx: np.ndarray) -> list[int]:
    """Centres of runs of consecutive indices (an anti-aliased spine can be 2 px wide)."""
    groups = np.split(idx, np.nonzero(np.diff(idx) > 1)[0] + 1)
    return [int(round(g.mean())) for g in groups if len(g)]


def plot_boxes(img: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) pixel rows/columns of each plot's frame (its black spines), left to right."""
    dark = img.max(-1) < 0.3  # (H, W)
    top, bottom = sorted(int(r) for r in np.argsort(dark.sum(1))[-2:])  # the two longest dark rows: top, bottom
    cols = _runs(np.nonzero(dark[top:bottom + 1].sum(0) >= 0.9 * (bottom - top))[0])
    pairs = zip(cols[:-1], cols[1:])
    return [(top, bottom, a, b) for a, b in pairs if b - a > 100]  # > 100 px wide: plots, not a colour bar


def cell_pixels(box: tuple[int, int, int, int]) -> np.ndarray:
    """(GRID*GRID, 2) (row, col) pixel at the centre of each grid cell, in grid_points order (y outer, x inner)."""
    top, bottom, left, right = box
    centre = (np.arange(GRID) + 0.5) / GRID
    cols = np.rint(left + centre * (right - left)).astype(int)
    rows = np.rint(bottom - centre * (bottom - top)).astype(int)  # origin="lower": y grows upwards
    r, c = np.meshgrid(rows, cols, indexing="ij")
    return np.c_[r.ravel(), c.ravel()]


def off_frame() -> np.ndarray:
    """(GRID*GRID,) True off the outermost ring of cells, whose centres touch the frame's spines."""
    ok = np.zeros((GRID, GRID), bool)
    ok[1:-1, 1:-1] = True
    return ok.ravel()


def interior(labels: np.ndarray) -> np.ndarray:
    """(GRID*GRID,) True for cells whose 8 neighbours share their label, off the frame: no edge to blur."""
    lab = labels.reshape(GRID, GRID)
    ok = np.zeros_like(lab, bool)
    core = lab[1:-1, 1:-1]
    ok[1:-1, 1:-1] = np.all([core == lab[1 + dy:GRID - 1 + dy, 1 + dx:GRID - 1 + dx]
                             for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    return ok.ravel()


def shown_colours(img: np.ndarray, box, palette: np.ndarray) -> np.ndarray:
    """(GRID*GRID,) index of the palette colour seen at each cell's centre, -1 where none (a marker, the legend)."""
    px = img[tuple(cell_pixels(box).T)]  # (N, 3)
    dist = np.abs(px[:, None, :] - palette[None]).max(-1)  # (N, P)
    return np.where(dist.min(1) <= TOL, dist.argmin(1), -1)


def runtime_grid(folder):
    """The runtime's probabilities on the pictures' grid: what every panel must show."""
    clf = Classifier.load(folder)
    return clf.predict_proba(grid_points(clf.manifest.domain, GRID)).astype(np.float64)  # (GRID*GRID, K)


def check_boundary(folder) -> None:
    """Each region cell has the colour (35% over white) of the class the runtime predicts there."""
    probs = runtime_grid(folder)
    labels, k = probs.argmax(1), probs.shape[1]
    palette = 0.35 * np.array([to_rgb(c) for c in COLORS[:k]]) + 0.65  # (K, 3)
    img = rgb(folder / "boundary.png")
    (box,) = plot_boxes(img)
    seen, ok = shown_colours(img, box, palette), interior(labels)
    visible = ok & (seen >= 0)
    assert visible.sum() >= 0.6 * ok.sum()  # markers and the legend hide the rest
    assert np.mean(seen[visible] == labels[visible]) >= 0.99
    assert set(labels[visible]) == set(labels)  # every predicted class is drawn, in its colour


def expected_confidence(probs: np.ndarray) -> np.ndarray:
    """(N, 3) the parity picture's class colour, shaded by confidence, over white (plots._confidence_image)."""
    k = probs.shape[1]
    alpha = (0.1 + 0.8 * (probs.max(1) - 1 / k) / (1 - 1 / k))[:, None]  # (N, 1)
    return alpha * np.array([to_rgb(c) for c in COLORS[:k]])[probs.argmax(1)] + (1 - alpha)


def check_parity(folder, eager: np.ndarray | None = None) -> None:
    """Both class panels show the runtime's classes and confidence; the difference panel shows the decade of
    |runtime - eager| per cell (when eager is given), and is never one flat colour."""
    import matplotlib.pyplot as plt

    probs = runtime_grid(folder)
    img = rgb(folder / "parity.png")
    boxes = plot_boxes(img)
    assert len(boxes) == 3
    ok = interior(probs.argmax(1))
    want = expected_confidence(probs)  # (N, 3)
    for box in boxes[:2]:
        got = img[tuple(cell_pixels(box).T)]
        assert np.mean(np.abs(got - want).max(1)[ok] <= TOL) >= 0.85  # the legend hides some of panel 2
    palette = plt.get_cmap("magma", len(DECADES) - 1)(np.arange(len(DECADES) - 1))[:, :3]
    seen = shown_colours(img, boxes[2], palette)[off_frame()]
    assert np.mean(seen >= 0) >= 0.95 and len(set(seen[seen >= 0])) >= 2
    if eager is not None:
        decade = np.digitize(np.abs(probs - eager).max(1), DECADES[1:-1])[off_frame()]  # each cell's colour bin
        assert np.array_equal(seen[seen >= 0], decade[seen >= 0])


def check_training(folder) -> None:
    """Both panels carry the train and test curves (matplotlib's first two line colours)."""
    img = rgb(folder / "training.png")
    boxes = plot_boxes(img)
    assert len(boxes) == 2
    for top, bottom, left, right in boxes:
        panel = img[top + 2:bottom - 1, left + 2:right - 1]
        for colour in ("C0", "C1"):
            assert (np.abs(panel - to_rgb(colour)).max(-1) <= TOL).sum() >= 100, colour


@pytest.mark.parametrize("task", TOY_TASKS)
def test_committed_pictures_show_the_runtime(task):
    check_boundary(ARTIFACTS / task)
    check_training(ARTIFACTS / task)  # parity.png is never committed: checked on a fresh plot below


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


@pytest.fixture(scope="module")
def replotted(tmp_path_factory):
    """moons, re-plotted by this code in this process."""
    folder = tmp_path_factory.mktemp("plot") / "moons"
    shutil.copytree(ARTIFACTS / "moons", folder)
    res = run_cli("plot", folder, "--parity")
    assert res.exit_code == 0, res.output
    return folder


def test_plot_regenerates_identically(replotted, tmp_path):
    shutil.copytree(ARTIFACTS / "moons", tmp_path / "moons")
    res = run_cli("plot", tmp_path / "moons")
    assert res.exit_code == 0, res.output
    a, b = snapshot(replotted), snapshot(tmp_path / "moons")
    assert b == snapshot(ARTIFACTS / "moons")  # the committed pictures and card are what `edgeclf plot` draws
    assert {k: v for k, v in a.items() if k not in ("parity.png", CARD)} == {k: v for k, v in b.items() if k != CARD}
    assert {k for k in b if k.endswith(".png")} == set(pictures_of("moons"))  # committed = what `plot` draws


def test_plot_parity_on_request(tmp_path):
    shutil.copytree(ARTIFACTS / "blobs", tmp_path / "blobs")
    res = run_cli("plot", tmp_path / "blobs", "--parity")
    assert res.exit_code == 0, res.output
    assert png_size((tmp_path / "blobs" / "parity.png").read_bytes()) == SIZES["parity.png"]


def test_fresh_pictures_show_the_runtime(replotted):
    import torch

    model = from_trained(load_checkpoint(replotted, "moons")).model
    pts = grid_points(Manifest.read(replotted)[0].domain, GRID)
    with torch.inference_mode():
        eager = model(torch.from_numpy(pts))[1].numpy().astype(np.float64)  # (GRID*GRID, K), as `plot` computes it
    check_boundary(replotted)
    check_parity(replotted, eager)
    check_training(replotted)


def test_plot_refuses_unexported_folder(tmp_path):
    (tmp_path / "x").mkdir()
    res = run_cli("plot", tmp_path / "x")
    assert res.exit_code == 1 and "no manifest.json" in res.output and "Traceback" not in res.output
