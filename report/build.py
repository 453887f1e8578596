"""`edgeclf plot`: an artifact folder's pictures and MODEL_CARD.md, written atomically beside its files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeclf.artifact.store import CARD, CHECK_DATA, METRICS, PICTURES, read_json, staged_folder, write_bytes
from edgeclf.runtime import Classifier, Manifest

if TYPE_CHECKING:
    from torch import nn

    from edgeclf.train.checkpoint import Trained


def plot_artifact(folder: Path, parity: bool = False) -> list[str]:
    """(Re)write the pictures and MODEL_CARD.md in folder; returns the names written.

    parity.png (runtime vs eager, difference per grid point) shows what this machine's CPU computes, so it is
    drawn only when asked and never committed; every other picture is the same on any machine."""
    import torch

    from edgeclf.export.geometry import PICTURE_GRID, grid_points
    from edgeclf.export.subject import from_trained
    from edgeclf.report import plots
    from edgeclf.train.checkpoint import checkpoint_path, load_checkpoint

    folder = Path(folder)
    manifest, _ = Manifest.read(folder)  # refuses a folder that was never exported
    if manifest.origin.kind != "trained":  # a brought-in model: no checkpoint, no labels; its check data
        return _plot_imported(folder, manifest)
    checkpoint_path(folder, manifest.task)  # its own folder in the message, before anything is staged
    keep = [p.name for p in folder.iterdir() if p.name not in (*PICTURES, CARD)]
    written: list[str] = []
    with staged_folder(folder, keep=keep) as tmp:
        trained = load_checkpoint(tmp, manifest.task)
        spec = from_trained(trained)
        clf = Classifier.load(tmp)  # the regions are the runtime's, from the staged (= shipped) files
        if manifest.multilabel:
            written = _plot_multilabel(clf, trained, tmp)
            write_card(tmp)
            return [*written, CARD]
        two_d = len(manifest.features) == 2
        if two_d:
            plots.boundary(clf, trained.data, tmp / "boundary.png")
        else:
            plots.tabular(clf, trained.data, tmp / "confusion.png")
        plots.calibration(_calibration_samples(spec.model, trained), manifest.task, tmp / "calibration.png")
        plots.training(trained.metrics, manifest.task, tmp / "training.png")
        written += ["boundary.png" if two_d else "confusion.png", "calibration.png", "training.png"]
        if parity and two_d:
            with torch.inference_mode():
                eager = spec.model(torch.from_numpy(grid_points(manifest.domain, PICTURE_GRID)))[1]
            plots.parity(clf, eager.numpy().astype(np.float64), tmp / "parity.png")
            written.append("parity.png")
        write_card(tmp)
    return [*written, CARD]


def _plot_multilabel(clf: Classifier, trained: Trained, folder: Path) -> list[str]:
    from edgeclf.report import multilabel, plots

    x, y = trained.data.x_test, trained.data.y_test  # (N, F), (N, L) 0/1
    multilabel.reliability(clf, x, y, folder / multilabel.RELIABILITY)
    multilabel.errors(clf, x, y, folder / multilabel.ERRORS)
    plots.training(trained.metrics, clf.manifest.task, folder / "training.png")
    return [multilabel.RELIABILITY, multilabel.ERRORS, "training.png"]


def _plot_imported(folder: Path, manifest: Manifest) -> list[str]:
    """A brought-in model's picture (drawn from the check data saved at export, which has no labels, so no
    confusion matrix or calibration) and its card."""
    from edgeclf.report import plots

    name = "check_data.png"
    data = folder / CHECK_DATA
    with staged_folder(folder, keep=[p.name for p in folder.iterdir() if p.name not in (*PICTURES, CARD)]) as tmp:
        written = []
        if data.is_file():
            plots.check_data_view(Classifier.load(tmp), np.load(tmp / CHECK_DATA, allow_pickle=False), tmp / name)
            written.append(name)
        write_card(tmp)
    return [*written, CARD]


def write_card(folder: Path) -> None:
    """MODEL_CARD.md from the folder's manifest, its metrics.json (when it has one) and the pictures it holds:
    what `edgeclf plot` ends with, and what an export rewrites when the folder it replaces had a card."""
    from edgeclf.report.card import model_card

    manifest, _ = Manifest.read(folder)
    metrics = read_json(folder / METRICS) if (folder / METRICS).is_file() else {}
    pictures = [p for p in PICTURES if (folder / p).is_file()]
    write_bytes(folder / CARD, model_card(manifest, metrics, pictures).encode())


def _calibration_samples(model: nn.Module, trained: Trained) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Eager probabilities on the test split and, for a registry task that can draw one, the fresh sample."""
    import torch

    from edgeclf.train.tasks import TASKS

    samples = {"test": (trained.data.x_test, trained.data.y_test)}
    spec = TASKS.get(trained.task.name)
    if spec is not None and spec.fresh_targets:
        samples["fresh"] = spec.fresh()
    with torch.inference_mode():
        return {k: (model(torch.from_numpy(x))[1].numpy(), y) for k, (x, y) in samples.items()}
