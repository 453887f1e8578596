"""Pictures of an artifact: decision regions (runtime), runtime-vs-eager parity, training curves.

matplotlib with the Agg backend; the same inputs give the same pixels (no timestamps in the PNG metadata).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.export.geometry import PICTURE_GRID as GRID
from edgeclf.export.geometry import grid_points
from edgeclf.export.parity import PROBA_ATOL
from edgeclf.runtime import Classifier, Manifest
from edgeclf.train.tasks import Dataset

COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
          "#64B5CD")  # one per class (up to 10), colour-blind safe (seaborn "deep")
PNG_META = {"Software": None}
FEW_ROWS = 30  # a calibration bin with fewer rows is drawn hollow: its accuracy is too noisy to read


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10})
    return plt


def _regions(ax: Any, manifest: Manifest, labels: np.ndarray, n: int) -> None:
    from matplotlib.colors import ListedColormap

    k = len(manifest.classes)
    lo, hi = manifest.domain.low, manifest.domain.high
    ax.imshow(labels.reshape(n, n), origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]), aspect="auto",
              cmap=ListedColormap(COLORS[:k]), vmin=-0.5, vmax=k - 0.5, alpha=0.35, interpolation="nearest")


def boundary(clf: Classifier, data: Dataset, out: Path) -> None:
    """Decision regions computed by the runtime, train (dots) and test (crosses) points over them."""
    plt = _plt()
    m = clf.manifest
    pts = grid_points(m.domain, GRID)
    labels = clf.predict_proba(pts).argmax(1)
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=100)
    _regions(ax, m, labels, GRID)
    for i, name in enumerate(m.classes):
        tr, te = data.x_train[data.y_train == i], data.x_test[data.y_test == i]
        ax.scatter(tr[:, 0], tr[:, 1], s=7, color=COLORS[i], edgecolors="none", label=f"{name} (train)")
        ax.scatter(te[:, 0], te[:, 1], s=22, color=COLORS[i], marker="x", linewidths=1.0, label=f"{name} (test)")
    acc = float((clf.predict_proba(data.x_test).argmax(1) == data.y_test).mean())
    f = m.feature_names
    ax.set(xlabel=f[0], ylabel=f[1], xlim=(m.domain.low[0], m.domain.high[0]), ylim=(m.domain.low[1], m.domain.high[1]),
           title=f"{m.task}: decision regions (onnxruntime), test accuracy {acc:.2%}")
    ax.legend(loc="upper right", fontsize=7, ncol=2 if len(m.classes) > 2 else 1, framealpha=0.85)
    _save(fig, out)


def _confidence_image(probs: np.ndarray, k: int) -> np.ndarray:
    """(GRID, GRID, 4) RGBA: the predicted class's colour, opaque where the model is sure, faint near ties."""
    from matplotlib.colors import to_rgb

    rgb = np.array([to_rgb(c) for c in COLORS[:k]])[probs.argmax(1)]  # (N, 3)
    alpha = 0.1 + 0.8 * (probs.max(1) - 1 / k) / (1 - 1 / k)  # (N,)
    image: np.ndarray = np.c_[rgb, alpha].reshape(GRID, GRID, 4)
    return image


def parity(clf: Classifier, eager_proba: np.ndarray, out: Path) -> None:
    """Eager PyTorch vs runtime probability of the predicted class, and |difference| over the same grid."""
    plt = _plt()
    from matplotlib.colors import BoundaryNorm
    from matplotlib.patches import Patch

    m = clf.manifest
    k = len(m.classes)
    pts = grid_points(m.domain, GRID)
    got = clf.predict_proba(pts)
    diff = np.abs(got.astype(np.float64) - eager_proba).max(1)
    disagree = got.argmax(1) != eager_proba.argmax(1)
    lo, hi = m.domain.low, m.domain.high
    ext = (lo[0], hi[0], lo[1], hi[1])
    fig, axes = plt.subplots(1, 3, figsize=(12.6, 4.0), dpi=100)
    for ax, probs, name in ((axes[0], eager_proba, "eager PyTorch"), (axes[1], got, "runtime (onnxruntime)")):
        ax.imshow(_confidence_image(probs, k), origin="lower", extent=ext, aspect="auto", interpolation="nearest")
        ax.set_title(f"{name}: class, shade = P(class)")
    axes[1].legend(handles=[Patch(color=COLORS[i], label=c) for i, c in enumerate(m.classes)], fontsize=7,
                   loc="upper right")
    decades = [0.0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1.0]  # one colour per decade: readable, and compresses
    im = axes[2].imshow(diff.reshape(GRID, GRID), origin="lower", extent=ext, aspect="auto", interpolation="nearest",
                        cmap=plt.get_cmap("magma", len(decades) - 1), norm=BoundaryNorm(decades, len(decades) - 1))
    bar = fig.colorbar(im, ax=axes[2], fraction=0.046, label="|runtime - eager| (max over classes)")
    bar.set_ticks(decades[1:-1], labels=[f"{d:.0e}" for d in decades[1:-1]])
    axes[2].set_title(f"max abs diff {diff.max():.1e} (policy {PROBA_ATOL:g}), {int(disagree.sum())} label flips")
    if disagree.any():
        for ax in axes:
            ax.scatter(pts[disagree, 0], pts[disagree, 1], s=18, marker="x", color="red", label="label disagrees")
        axes[2].legend(loc="upper right", fontsize=7)
    for ax in axes:
        ax.set(xlabel=m.feature_names[0], ylabel=m.feature_names[1])
    fig.suptitle(f"{m.task}: runtime vs eager PyTorch on a {GRID}x{GRID} grid")
    _save(fig, out)


def training(metrics: dict[str, Any], task: str, out: Path) -> None:
    """Loss and accuracy per epoch, train and test, from metrics.json."""
    plt = _plt()
    h = metrics["history"]
    epochs = np.arange(1, len(h["train_loss"]) + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    for split, style in (("train", "-"), ("test", "--")):
        a.plot(epochs, h[f"{split}_loss"], style, label=split)
        b.plot(epochs, np.asarray(h[f"{split}_accuracy"]) * 100, style, label=split)
    a.set(xlabel="epoch", ylabel="loss", yscale="log", title=f"{task}: loss")
    b.set(xlabel="epoch", ylabel="accuracy (%)", title=f"{task}: accuracy (final test {metrics['test_accuracy']:.2%})")
    b.set_ylim(max(0.0, min(h["test_accuracy"] + h["train_accuracy"]) * 100 - 2), 100.5)
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, out)


def calibration(samples: dict[str, tuple[np.ndarray, np.ndarray]], task: str, out: Path) -> None:
    """Reliability diagram (top-label confidence vs accuracy per bin) with the bin counts, for each sample."""
    from edgeclf.train.calibration import reliability

    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    a.plot([0, 1], [0, 1], ":", color="gray", label="perfectly calibrated")
    width = 0.1 / max(1, len(samples))
    for i, (name, (proba, y)) in enumerate(samples.items()):
        r = reliability(proba, y, bins=10)
        filled, few = r.counts > 0, r.counts < FEW_ROWS
        a.plot(r.confidence[filled], r.accuracy[filled], "-", color=COLORS[i], label=f"{name} (ECE {r.ece:.4f})")
        a.plot(r.confidence[filled & ~few], r.accuracy[filled & ~few], "o", color=COLORS[i])
        a.plot(r.confidence[filled & few], r.accuracy[filled & few], "o", markerfacecolor="white", color=COLORS[i])
        b.bar(r.edges[:-1] + i * width, r.counts, width=width, align="edge", color=COLORS[i], label=name)
    a.set(xlabel="confidence (top-class probability)", ylabel="accuracy", xlim=(0, 1.02), ylim=(0, 1.02),
          title=f"{task}: reliability (10 bins; hollow: fewer than {FEW_ROWS} rows)")
    b.set(xlabel="confidence bin", ylabel="rows (log)", yscale="log", title="rows per bin")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, out)


def tabular(clf: Classifier, data: Dataset, out: Path) -> None:
    """For more than two features: the confusion matrix, per-class precision and recall on the test split, and
    the test points in their first two principal components, coloured by true class, misclassified ones ringed."""
    plt = _plt()
    m = clf.manifest
    k = len(m.classes)
    pred = clf.predict_proba(data.x_test).argmax(1)
    conf = np.zeros((k, k), np.int64)
    np.add.at(conf, (data.y_test, pred), 1)
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.6), dpi=100)
    a.imshow(conf, cmap="Blues")
    for (i, j), v in np.ndenumerate(conf):
        a.text(j, i, str(v), ha="center", va="center", fontsize=7 if k > 6 else 9,
               color="white" if v > conf.max() / 2 else "black")
    a.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title=f"{m.task}: confusion (test)")
    a.set_xticklabels(m.classes, rotation=45, ha="right", fontsize=7)
    a.set_yticklabels(m.classes, fontsize=7)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision, recall = np.diag(conf) / conf.sum(0), np.diag(conf) / conf.sum(1)
    xs = np.arange(k)
    b.bar(xs - 0.2, np.nan_to_num(precision), 0.4, label="precision")
    b.bar(xs + 0.2, np.nan_to_num(recall), 0.4, label="recall")
    b.set(xticks=xs, ylim=(0.0, 1.01), title="per class (test)")  # from 0: bar heights compare honestly
    b.set_xticklabels(m.classes, rotation=45, ha="right", fontsize=7)
    b.legend(fontsize=8)
    _pca_scatter(c, data, pred, m.classes)
    _save(fig, out)


def _pca_scatter(ax: Any, data: Dataset, pred: np.ndarray, classes: tuple[str, ...]) -> None:
    x = data.x_train.astype(np.float64)
    mean, std = x.mean(0), np.where(x.std(0) > 0, x.std(0), 1.0)
    _, _, vt = np.linalg.svd((x - mean) / std, full_matrices=False)
    # rounded: the last bits of an SVD differ between CPUs, and the committed picture must not
    z = np.round(((data.x_test - mean) / std) @ (vt[:2].T * np.sign(vt[:2, :1].T + 1e-300)), 4)  # (N, 2)
    for i, name in enumerate(classes):
        sel = data.y_test == i
        ax.scatter(z[sel, 0], z[sel, 1], s=9, color=COLORS[i % len(COLORS)], label=name)
    wrong = pred != data.y_test
    ax.scatter(z[wrong, 0], z[wrong, 1], s=60, facecolors="none", edgecolors="red", label="misclassified")
    ax.set(xlabel="PC1", ylabel="PC2", title=f"test points, first two principal components ({int(wrong.sum())} wrong)")
    ax.legend(fontsize=6, ncol=2)


def _save(fig: Any, out: Path) -> None:
    fig.tight_layout()
    fig.savefig(out, metadata=PNG_META)
    import matplotlib.pyplot as plt

    plt.close(fig)


def check_data_view(clf: Classifier, x: np.ndarray, out: Path) -> None:
    """A brought-in model (no labels): its decision regions over the domain with the check rows (two features),
    or the check rows in their first two principal components (more), coloured by the class the model gives."""
    plt = _plt()
    m = clf.manifest
    pred = clf.predict_proba(x).argmax(1)
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=100)
    if len(m.features) == 2:
        _regions(ax, m, clf.predict_proba(grid_points(m.domain, GRID)).argmax(1), GRID)
        z, labels = x, m.feature_names
        ax.set(xlim=(m.domain.low[0], m.domain.high[0]), ylim=(m.domain.low[1], m.domain.high[1]))
    else:
        x64 = x.astype(np.float64)
        std = np.where(x64.std(0) > 0, x64.std(0), 1.0)
        _, _, vt = np.linalg.svd((x64 - x64.mean(0)) / std, full_matrices=False)
        z = np.round(((x64 - x64.mean(0)) / std) @ (vt[:2].T * np.sign(vt[:2, :1].T + 1e-300)), 4)  # (N, 2)
        labels = ("PC1", "PC2")
    for i, name in enumerate(m.classes):
        ax.scatter(z[pred == i, 0], z[pred == i, 1], s=9, color=COLORS[i % len(COLORS)], label=f"{name} (model)")
    ax.set(xlabel=labels[0], ylabel=labels[1],
           title=f"{m.task}: {len(x):,} check rows by the model's class (onnxruntime)")
    ax.legend(fontsize=7, loc="upper right")
    _save(fig, out)
