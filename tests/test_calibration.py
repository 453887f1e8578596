"""Calibration metrics: agree with scikit-learn, a hand-computed ECE, and ECE separates calibrated from not."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeclf.runtime.errors import InputError
from edgeclf.train.calibration import brier, calibration_summary, ece, log_loss, reliability


def _random_proba(n: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(c), size=n)  # (N, C)
    return p, rng.integers(0, c, size=n)


def _calibrated_sample(n: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities with labels drawn from them: P(y = k | p) = p_k, so the top label is calibrated too."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(c, 0.5), size=n)  # (N, C), many confident rows
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)  # inverse-CDF draw per row
    return p, np.minimum(y, c - 1)


def _temper(p: np.ndarray, power: float) -> np.ndarray:
    """p^power renormalised: power > 1 sharpens (over-confident), < 1 flattens (under-confident)."""
    q = np.maximum(p, 1e-300) ** power
    return q / q.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("c", [2, 3, 5], ids=lambda c: f"{c}classes")
def test_log_loss_matches_sklearn(c):
    from sklearn.metrics import log_loss as sk_log_loss

    p, y = _random_proba(500, c, seed=c)
    assert log_loss(p, y) == pytest.approx(sk_log_loss(y, p, labels=list(range(c))), rel=1e-12)


def test_log_loss_clips_a_zero_probability():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert log_loss(p, np.array([1, 0])) == pytest.approx((-np.log(1e-15) - np.log(0.5)) / 2)


def test_brier_is_twice_sklearn_binary():
    from sklearn.metrics import brier_score_loss

    p, y = _random_proba(500, 2, seed=7)
    assert brier(p, y) == pytest.approx(2 * brier_score_loss(y, p[:, 1]), rel=1e-12)


def test_brier_multiclass_by_hand():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    # row 0 true 0: .09 + .04 + .01; row 1 true 1: .01 + .49 + .36
    assert brier(p, np.array([0, 1])) == pytest.approx((0.14 + 0.86) / 2)


# confidences 0.9 (right), 0.8 (wrong), 0.65 (right), 0.6 (wrong)
TINY_P = np.array([[0.9, 0.1], [0.8, 0.2], [0.35, 0.65], [0.4, 0.6]])
TINY_Y = np.array([0, 1, 1, 0])


@pytest.mark.parametrize("bins, expected", [
    (2, abs(0.5 - (0.9 + 0.8 + 0.65 + 0.6) / 4)),  # one filled bin: mean conf .7375, accuracy .5
    (10, (0.1 + 0.8 + 0.35 + 0.6) / 4),  # one row per bin
    # (.4,.6]: 0.6 wrong; (.6,.8]: 0.8 wrong + 0.65 right (conf .725, acc .5); (.8,1]: 0.9 right; weighted by count
    (5, (1 * 0.6 + 2 * abs(0.5 - 0.725) + 1 * 0.1) / 4),
], ids=["2bins", "10bins", "5bins-unequal-counts"])
def test_ece_by_hand(bins, expected):
    assert ece(TINY_P, TINY_Y, bins=bins) == pytest.approx(expected, abs=1e-12)


def test_reliability_table_by_hand():
    r = reliability(TINY_P, TINY_Y, bins=10)
    assert r.counts.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 0]
    assert np.isnan(r.confidence[0]) and np.isnan(r.accuracy[9])
    assert r.confidence[5:9] == pytest.approx([0.6, 0.65, 0.8, 0.9])
    assert r.accuracy[5:9].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert r.edges == pytest.approx(np.linspace(0, 1, 11))
    with pytest.raises(ValueError):
        r.counts[0] = 5  # read-only: the table is a result, not a buffer


def test_confidence_on_an_edge_falls_in_the_bin_it_closes():
    r = reliability(np.array([[0.5, 0.5], [0.3, 0.7]]), np.array([0, 1]), bins=2)
    assert r.counts.tolist() == [1, 1]


@pytest.mark.parametrize("c", [2, 4], ids=lambda c: f"{c}classes")
def test_ece_separates_calibrated_from_sharpened_and_flattened(c):
    p, y = _calibrated_sample(100_000, c, seed=c)
    calibrated = ece(p, y)
    assert calibrated < 0.005
    for power in (3.0, 1 / 3):
        assert ece(_temper(p, power), y) > 0.05 > 10 * calibrated


@pytest.mark.parametrize("bins", [1, 7, 15])
def test_reliability_counts_sum_to_rows(bins):
    p, y = _random_proba(1234, 3, seed=bins)
    r = reliability(p, y, bins=bins)
    assert r.counts.sum() == 1234 and len(r.edges) == bins + 1
    # bin means stay inside their bin
    filled = r.counts > 0
    assert np.all(r.confidence[filled] > r.edges[:-1][filled]) and np.all(r.confidence[filled] <= r.edges[1:][filled])


def test_summary_values_and_stable_json():
    p, y = _random_proba(300, 3, seed=1)
    s = calibration_summary(p, y)
    assert set(s) == {"accuracy", "log_loss", "brier", "ece", "rows"} and s["rows"] == 300
    assert s["log_loss"] == float(f"{log_loss(p, y):.6g}")
    assert s["accuracy"] == float(f"{np.mean(p.argmax(1) == y):.6g}")
    # float32 input of the same probabilities gives the same 6-digit summary, hence the same bytes
    assert json.dumps(calibration_summary(p.astype(np.float32), y)) == json.dumps(s)


@pytest.mark.parametrize("proba, y, fragment", [
    (np.full(4, 0.5), np.zeros(4, int), "shape (4,)"),
    (np.ones((3, 1)), np.zeros(3, int), "shape (3, 1)"),
    (np.zeros((0, 2)), np.zeros(0, int), "shape (0, 2)"),
    (np.full((3, 2), 0.5), np.zeros(4, int), "y must have shape (3,)"),
    (np.full((3, 2), 0.5), np.zeros((3, 1), int), "got shape (3, 1)"),
    (np.full((3, 2), 0.5), np.zeros(3), "dtype float64"),
    (np.full((3, 2), 0.5), np.array([0, 1, 2]), "values 0..2"),
    (np.full((3, 2), 0.5), np.array([0, -1, 1]), "in [0, 1]"),
    (np.array([[2.0, -1.0]]), np.zeros(1, int), "logits?"),
    (np.array([[np.nan, 0.5]]), np.zeros(1, int), "finite"),
    (np.array([[0.5, 0.5], [0.6, 0.6]]), np.zeros(2, int), "row 1 sums to 1.2"),
    ([["a", "b"]], np.zeros(1, int), "numeric (N, C) array"),
], ids=["1d", "one-column", "no-rows", "y-length", "y-2d", "y-float", "y-too-big", "y-negative", "logits",
        "nan", "row-sum", "strings"])
@pytest.mark.parametrize("fn", [log_loss, brier, ece, reliability, calibration_summary], ids=lambda f: f.__name__)
def test_bad_inputs_raise_input_error(fn, proba, y, fragment):
    with pytest.raises(InputError) as e:
        fn(proba, y)
    assert fragment in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("bins", [0, -3, 2.5, True])
def test_bad_bins(bins):
    with pytest.raises(InputError, match="bins must be a positive integer"):
        ece(TINY_P, TINY_Y, bins=bins)


def test_imports_neither_torch_nor_sklearn():
    code = "import sys, edgeclf.train.calibration; print(sorted({'torch', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
