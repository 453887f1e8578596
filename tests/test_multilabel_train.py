"""Multi-label training (issue 26): `edgeclf train --data FILE --label a,b,c`, the per-label thresholds, the metrics
against the baselines, and every bad input as one line with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import assert_clean_error, run_cli

from edgeclf.train.multilabel import best_thresholds, metrics

LABELS = ["alpha", "beta", "gamma"]


def _frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Three labels that are rules of the features plus noise; gamma rare-ish."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    df = pd.DataFrame(x, columns=["f0", "f1", "f2", "f3"])
    df["alpha"] = (x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    df["beta"] = np.where(x[:, 1] - x[:, 2] > 0.5, "yes", "no")
    df["gamma"] = np.where(x[:, 3] > 1.2, "true", "false")
    return df


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mltrain")
    _frame().to_csv(root / "tags.csv", index=False)
    r = run_cli("train", "--data", root / "tags.csv", "--label", ",".join(LABELS), "--out", root / "art",
                "--epochs", "60", "--quiet")
    assert r.exit_code == 0, r.output
    return root / "art" / "tags"


def test_metrics_against_baselines(trained: Path) -> None:
    m = json.loads((trained / "metrics.json").read_text())
    assert m["kind"] == "multilabel" and m["labels"] == LABELS
    assert set(m["thresholds"]) == set(LABELS) and all(0 < t < 1 for t in m["thresholds"].values())
    for model in (m["test"], m["baselines"]["mlp"], m["baselines"]["ovr_logreg"]):
        assert {"subset_accuracy", "hamming_loss", "micro_f1", "macro_f1", "per_label"} <= set(model)
        assert set(model["per_label"]) == set(LABELS)
        assert {"precision", "recall", "f1", "roc_auc", "ece"} <= set(model["per_label"]["gamma"])
    rows = m["rows"]  # 240 rows; ceil(20%) of each of the 4 rarest-label strata, so up to 3 over the plain share
    assert sum(rows.values()) == 240 and 48 <= rows["test"] <= 51 and 38 <= rows["validation"] <= 42, rows
    assert m["test"]["macro_f1"] > 0.6  # learnable rules: far above chance


def test_export_and_predict(trained: Path, tmp_path: Path) -> None:
    from edgeclf.runtime import Classifier

    r = run_cli("export", "tags", "--out", trained.parent, "--batch-size", "8")
    assert r.exit_code == 0, r.output
    clf = Classifier.load(trained)
    m = json.loads((trained / "metrics.json").read_text())
    assert clf.manifest.kind == "multilabel"
    assert clf.thresholds_.tolist() == pytest.approx([m["thresholds"][k] for k in LABELS], abs=1e-7)
    x = _frame(20, seed=5)[["f0", "f1", "f2", "f3"]]
    assert clf.predict(x).shape == (20, 3) and clf.predict(x).dtype == bool


def test_thresholds_maximise_f1() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((300, 2)) < [0.3, 0.05]).astype(np.float32)
    p = np.clip(y * 0.3 + rng.random((300, 2)) * 0.7, 0, 1).astype(np.float32)
    t = best_thresholds(p, y)
    def f1(j: int, c: float) -> float:
        pred, truth = p[:, j] >= c, y[:, j] > 0.5
        return 2 * float((pred & truth).sum()) / float(pred.sum() + truth.sum())

    for j in range(2):  # no threshold on a fine grid does better
        assert f1(j, t[j]) >= max(f1(j, c) for c in np.linspace(0.001, 0.999, 999)) - 1e-12


def test_metric_values() -> None:
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]], np.float32)
    p = np.array([[0.9, 0.2], [0.4, 0.8], [0.1, 0.6], [0.2, 0.9]], np.float32)
    m = metrics(p, y, [0.5, 0.5], ["a", "b"])
    # predictions [[1,0],[0,1],[0,1],[0,1]]: rows 0 and 3 right; row 1 misses a, row 2 adds b
    assert m["subset_accuracy"] == 0.5 and m["hamming_loss"] == 0.25
    assert m["per_label"]["a"]["recall"] == 0.5 and m["per_label"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))


@pytest.mark.parametrize("change, labels, extra, fragment", [
    (lambda d: d.assign(beta=d["beta"].where(d.index != 7, "maybe")), "alpha,beta,gamma", (),
     "label column 'beta' row 8: value 'maybe': expected 0/1, true/false or yes/no"),
    (lambda d: d.assign(alpha=2), "alpha,beta,gamma", (), "value 2: expected 0/1"),
    (lambda d: d.assign(gamma="no"), "alpha,beta,gamma", (), "'gamma' is 0 (absent) on every row"),
    (lambda d: d, "alpha,beta,alpha", (), "'alpha' is named twice"),
    (lambda d: d, "alpha,beta", ("--features", "f0,alpha"), "'alpha' is both a label and a feature"),
    (lambda d: d, "alpha,delta", (), "label column 'delta' not found"),
])
def test_bad_input_one_line_nothing_written(tmp_path: Path, change, labels: str, extra: tuple[str, ...],
                                            fragment: str) -> None:
    src = tmp_path / "bad.csv"
    change(_frame(40)).to_csv(src, index=False)
    r = run_cli("train", "--data", src, "--label", labels, "--out", tmp_path / "art", "--epochs", "2", "--quiet",
                *extra)
    assert_clean_error(r, 1, fragment)
    assert len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "art").exists() or not any((tmp_path / "art").iterdir())


def test_python_api_takes_a_list(tmp_path: Path) -> None:
    from edgeclf.train.api import train_data

    r = train_data(_frame(), ["alpha", "beta"], tmp_path, name="api", epochs=5)
    assert r.model_config.multilabel and r.model_config.n_outputs == 2
    assert (tmp_path / "api" / "checkpoint.pt").is_file()
