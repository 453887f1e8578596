"""A multi-label model's pictures (per-label reliability, the co-occurrence of its errors) and its card's tables
(per-label metrics at the chosen thresholds, against the baselines on the same split)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.report.plots import COLORS, FEW_ROWS, _plt, _save
from edgeclf.runtime import Classifier

RELIABILITY = "reliability.png"
ERRORS = "errors.png"


def reliability(clf: Classifier, x: np.ndarray, y: np.ndarray, out: Path) -> None:
    """One reliability diagram per label on the test rows: mean P(label) against the share of rows that have it,
    10 equal-width bins (hollow: fewer than FEW_ROWS rows), with the label's threshold as a vertical line."""
    plt = _plt()
    p, labels = clf.predict_proba(x), list(clf.labels_)  # (N, L)
    cols = min(4, len(labels))
    rows = -(-len(labels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), dpi=100, squeeze=False)
    for j, (ax, name) in enumerate(zip(axes.ravel(), labels)):
        which = np.minimum((p[:, j] * 10).astype(np.int64), 9)  # (N,)
        counts = np.bincount(which, minlength=10)
        filled = counts > 0
        conf = np.bincount(which, weights=p[:, j], minlength=10)[filled] / counts[filled]
        freq = np.bincount(which, weights=y[:, j], minlength=10)[filled] / counts[filled]
        few = counts[filled] < FEW_ROWS
        ax.plot([0, 1], [0, 1], ":", color="gray")
        ax.plot(conf, freq, "-", color=COLORS[0])
        ax.plot(conf[~few], freq[~few], "o", color=COLORS[0])
        ax.plot(conf[few], freq[few], "o", markerfacecolor="white", color=COLORS[0])
        ax.axvline(float(clf.thresholds_[j]), color=COLORS[1], lw=1, label=f"threshold {clf.thresholds_[j]:.3f}")
        ax.set(title=f"{name} ({y[:, j].mean():.1%} positive)", xlim=(0, 1.02), ylim=(0, 1.02),
               xlabel="P(label)", ylabel="share with the label")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    for ax in axes.ravel()[len(labels):]:
        ax.axis("off")
    fig.suptitle(f"{clf.manifest.task}: per-label reliability on the test rows (hollow: fewer than {FEW_ROWS} rows)")
    _save(fig, out)


def errors(clf: Classifier, x: np.ndarray, y: np.ndarray, out: Path) -> None:
    """Which labels go wrong together: cell (i, j) counts the test rows where label i and label j are both wrong
    (the diagonal: label i's errors), at the manifest's thresholds."""
    plt = _plt()
    wrong = (clf.predict(x) != (y > 0.5)).astype(np.int64)  # (N, L)
    both = wrong.T @ wrong  # (L, L)
    labels = list(clf.labels_)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2.5, 1.0 * len(labels) + 2), dpi=100)
    ax.imshow(both, cmap="Reds")
    for i in range(len(labels)):
        for j in range(len(labels)):
            dark = both[i, j] > both.max() / 2  # white on the darkest cells, black elsewhere
            ax.text(j, i, str(both[i, j]), ha="center", va="center", fontsize=9, color="white" if dark else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_title(f"{clf.manifest.task}: test rows with both labels wrong ({len(y):,} rows)")
    _save(fig, out)


def card_tables(metrics: dict[str, Any]) -> str:
    """The per-label table at the chosen thresholds and the comparison with the baselines (train/multilabel.py)."""
    test = metrics.get("test")
    if not test:
        return ""
    rows = "\n".join(
        f"| `{name}` | {m['positive_rate']:.1%} | {metrics['thresholds'][name]:.3f} | {m['precision']:.3f} | "
        f"{m['recall']:.3f} | {m['f1']:.3f} | {_num(m['roc_auc'])} | {m['ece']:.4f} |"
        for name, m in test["per_label"].items())
    base = metrics.get("baselines", {})
    named = [("this model (chosen thresholds)", test), ("this model at 0.5", metrics.get("test_at_0_5")),
             ("one-vs-rest logistic regression (0.5)", base.get("ovr_logreg")),
             ("MLPClassifier (0.5)", base.get("mlp"))]
    compare = "\n".join(f"| {n} | {m['subset_accuracy']:.4f} | {m['hamming_loss']:.4f} | {m['micro_f1']:.4f} | "
                        f"{m['macro_f1']:.4f} |" for n, m in named if m)
    return (f"\nTest rows, per label ({metrics['threshold_rule']}):\n\n"
            "| label | positive | threshold | precision | recall | F1 | ROC AUC | ECE (10 bins) |\n"
            "|---|---|---|---|---|---|---|---|\n" + rows +
            "\n\nAgainst the baselines, trained on the same rows and scored on the same test rows:\n\n"
            "| model | subset accuracy | Hamming loss | micro-F1 | macro-F1 |\n|---|---|---|---|---|\n" + compare +
            f"\n\nTarget ({metrics['target']}): {'met' if metrics.get('target_met') else '**missed**'}.\n")


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
