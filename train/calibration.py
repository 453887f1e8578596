"""Calibration metrics of predicted class probabilities: log loss, Brier score, ECE and a reliability table.

Pure numpy (no torch, no scikit-learn), so that the runtime side, the docs and the tests can all score
probabilities the same way. Every function takes `proba` (N, C) rows of class probabilities (binary tasks pass
both columns, [1 - p, p]) and `y` (N,) integer class indices. The predicted label is the argmax of a row (the
first class on a tie), which for two classes is the runtime's `p > 0.5` rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edgeclf.runtime.errors import InputError

LOG_LOSS_EPS = 1e-15  # a probability of 0 for the true class would give an infinite loss
ROW_SUM_TOL = 1e-4  # float32 softmax rows sum to 1 within ~1e-6; anything further off is not probabilities
SIG_DIGITS = 6  # summary values are rounded to this many significant digits so their JSON bytes are stable


@dataclass(frozen=True)
class Reliability:
    """Top-label reliability table over equal-width confidence bins (lo, hi] on [0, 1] (the first bin holds 0).

    confidence and accuracy are per-bin means, NaN for an empty bin (counts == 0). The arrays are read-only.
    """

    edges: np.ndarray  # (B + 1,) bin edges, 0 ... 1
    counts: np.ndarray  # (B,) rows per bin, int64
    confidence: np.ndarray  # (B,) mean top-label probability of the bin's rows
    accuracy: np.ndarray  # (B,) fraction of the bin's rows whose top label is right

    @property
    def ece(self) -> float:
        """Expected calibration error: sum over bins of (rows in bin / N) * |accuracy - confidence|."""
        filled = self.counts > 0
        weights = self.counts[filled] / self.counts.sum()
        return float(np.sum(weights * np.abs(self.accuracy[filled] - self.confidence[filled])))


def _checked(proba: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """proba as float64 (N, C) rows of probabilities and y as int64 (N,) indices in [0, C), or InputError."""
    try:
        p = np.asarray(proba, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"proba must be a numeric (N, C) array of probabilities, got {type(proba).__name__}") from None
    labels = np.asarray(y)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise InputError(
            f"proba must have shape (N, C) with N >= 1 rows and C >= 2 classes, got shape {p.shape}"
            " (for a binary task pass both columns, np.c_[1 - p, p])"
        )
    if labels.shape != (p.shape[0],):
        raise InputError(f"y must have shape ({p.shape[0]},) to match proba {p.shape}, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"y must hold integer class indices, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= p.shape[1]:
        raise InputError(f"y must be class indices in [0, {p.shape[1] - 1}], got values {labels.min()}..{labels.max()}")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise InputError("proba must hold finite probabilities in [0, 1] (logits? apply sigmoid/softmax first)")
    worst = int(np.argmax(np.abs(p.sum(axis=1) - 1)))
    if abs(p[worst].sum() - 1) > ROW_SUM_TOL:
        raise InputError(f"proba rows must sum to 1 (within {ROW_SUM_TOL}), row {worst} sums to {p[worst].sum():.6g}")
    return p, labels.astype(np.int64)


def _check_bins(bins: int) -> None:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise InputError(f"bins must be a positive integer, got {bins!r}")


def accuracy(proba: Any, y: Any) -> float:
    """Fraction of rows whose argmax class is y."""
    p, labels = _checked(proba, y)
    return float(np.mean(p.argmax(axis=1) == labels))


def log_loss(proba: Any, y: Any) -> float:
    """Mean negative log probability of the true class, the probability clipped at 1e-15 (as scikit-learn)."""
    p, labels = _checked(proba, y)
    true_p = p[np.arange(len(labels)), labels]  # (N,)
    return float(-np.mean(np.log(np.clip(true_p, LOG_LOSS_EPS, 1.0))))


def brier(proba: Any, y: Any) -> float:
    """Multiclass Brier score: mean over rows of sum_k (p_k - onehot_k)^2, in [0, 2].

    For two classes this is 2x scikit-learn's binary `brier_score_loss(y, p[:, 1])`, which scores the
    positive-class column alone: both columns err by the same amount.
    """
    p, labels = _checked(proba, y)
    onehot = np.eye(p.shape[1])[labels]  # (N, C)
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def reliability(proba: Any, y: Any, bins: int = 10) -> Reliability:
    """Top-label reliability table: rows binned by their highest probability into `bins` equal-width bins."""
    p, labels = _checked(proba, y)
    _check_bins(bins)
    conf = p.max(axis=1)  # (N,)
    correct = (p.argmax(axis=1) == labels).astype(np.float64)  # (N,)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # side="left": a confidence equal to an edge belongs to the bin that edge closes, (lo, hi]
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)  # (N,)
    counts = np.bincount(idx, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins -> NaN means, by design
        mean_conf = np.bincount(idx, weights=conf, minlength=bins) / counts
        mean_acc = np.bincount(idx, weights=correct, minlength=bins) / counts
    for a in (edges, counts, mean_conf, mean_acc):
        a.setflags(write=False)
    return Reliability(edges, counts, mean_conf, mean_acc)


def ece(proba: Any, y: Any, bins: int = 10) -> float:
    """Top-label expected calibration error over `bins` equal-width confidence bins, weighted by bin count."""
    return reliability(proba, y, bins).ece


def _round(v: float) -> float:
    return float(f"{v:.{SIG_DIGITS}g}")


def calibration_summary(proba: Any, y: Any) -> dict[str, Any]:
    """accuracy, log_loss, brier, ece (10 bins) and rows; floats rounded to 6 significant digits."""
    p, labels = _checked(proba, y)
    return {
        "accuracy": _round(accuracy(p, labels)),
        "log_loss": _round(log_loss(p, labels)),
        "brier": _round(brier(p, labels)),
        "ece": _round(ece(p, labels)),
        "rows": int(len(labels)),
    }


def class_recall(proba: Any, y: Any, classes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per class: its rows, the share of them predicted as it (recall), and how many rows are predicted as it."""
    p, labels = _checked(proba, y)
    pred = np.argmax(p, axis=1)  # (N,)
    out = {}
    for i, name in enumerate(classes):
        rows = int(np.sum(labels == i))
        hit = int(np.sum((labels == i) & (pred == i)))
        out[name] = {"rows": rows, "recall": _round(hit / rows) if rows else None, "predicted": int(np.sum(pred == i))}
    return out


def never_predicted(recall: dict[str, dict[str, Any]], sample: str = "test") -> str | None:
    """One line naming the classes with rows that the model predicts for no row at all (None if there is none)."""
    missed = [c for c, r in recall.items() if r["rows"] and not r["predicted"]]
    if not missed:
        return None
    names = ", ".join(f"{c!r} ({recall[c]['rows']} rows)" for c in missed)
    return (f"the model never predicts class {names} on the {sample} rows: its recall is 0; weigh or resample the "
            f"classes, or compare the baselines in metrics.json")


def baseline_verdict(metrics: dict[str, Any]) -> str | None:
    """One sentence when a scikit-learn baseline beats this model on the test rows (accuracy or log loss)."""
    mine, base = (metrics.get("calibration") or {}).get("test"), metrics.get("baselines")
    if not mine or not base:
        return None
    acc = [n for n, b in base.items() if b["accuracy"] > mine["accuracy"]]
    ll = [n for n, b in base.items() if b["log_loss"] < mine["log_loss"]]
    if not acc and not ll:
        return None
    parts = ([f"higher test accuracy ({', '.join(acc)})"] if acc else []) + \
        ([f"lower test log loss ({', '.join(ll)})"] if ll else [])
    return f"A baseline beats this model: {' and '.join(parts)} on the same split."
