"""The default recipe of a user's table (early stopping, the search), the scikit-learn baselines beside it, and
per-class recall with the never-predicted warning."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import run_cli
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from edgeclf.artifact.store import METRICS, read_json
from edgeclf.runtime import Manifest
from edgeclf.tables.stats import DataWarning
from edgeclf.train.api import train_data
from edgeclf.train.calibration import class_recall, never_predicted
from edgeclf.train.loop import TrainConfig, train
from edgeclf.train.model import ModelConfig, WithProbabilities
from edgeclf.train.search import search
from edgeclf.train.settings import VALIDATION
from edgeclf.train.tasks import Candidate, Dataset, TaskSpec, user_table_spec


def _data(rows: int = 400, seed: int = 0, flip: float = 0.2) -> Dataset:
    x, y = make_classification(rows, 6, n_informative=4, flip_y=flip, random_state=seed)
    x_tr, x_te, y_tr, y_te = train_test_split(x.astype(np.float32), y.astype(np.int64), test_size=0.2,
                                              random_state=0, stratify=y)
    return Dataset(x_tr, y_tr, x_te, y_te)


def _spec(data: Dataset, candidates: tuple[Candidate, ...] | None = None) -> TaskSpec:
    spec = user_table_spec("t", lambda n, s: (data.x_train, data.y_train), ("0", "1"), tuple(f"f{i}" for i in range(6)),
                           len(data.y_train), "test table", cv=0)
    return spec if candidates is None else replace(spec, candidates=candidates)


def _val_log_loss(model: torch.nn.Module, data: Dataset, seed: int) -> float:
    """The model's log loss on the validation rows, split here as documented (not by edgeclf's helper)."""
    _, x_val, _, y_val = train_test_split(data.x_train, data.y_train, test_size=VALIDATION, random_state=seed,
                                          stratify=data.y_train)
    with torch.no_grad():
        p = WithProbabilities(model, 2).eval()(torch.from_numpy(x_val))[1].numpy().astype(np.float64)
    return float(-np.mean(np.log(p[np.arange(len(y_val)), y_val])))


@pytest.fixture(scope="module")
def noisy() -> Dataset:
    return _data()


def test_early_stopping_restores_the_best_weights(noisy: Dataset) -> None:
    spec = _spec(noisy)
    # a wide net at a high rate on noisy labels overfits: the validation loss turns up within a few epochs
    cfg = TrainConfig.defaults(spec, device="cpu", epochs=200, patience=5, lr=0.03, weight_decay=0.0)
    r = train(spec, cfg, ModelConfig("t", 6, 2, (256,), standardize=True), noisy)
    curve = r.metrics["history"]["val_loss"]
    stop = r.metrics["early_stopping"]
    assert stop["epochs_run"] == len(curve) < 200  # it stopped early
    assert stop["best_epoch"] == int(np.argmin(curve)) + 1 == len(curve) - 5
    assert curve[-1] > min(curve) + 1e-3  # the last epoch was worse: restoring matters
    assert _val_log_loss(r.model, noisy, cfg.seed) == pytest.approx(min(curve), abs=2e-6)
    assert r.metrics["test_accuracy"] == r.metrics["history"]["test_accuracy"][stop["best_epoch"] - 1]


def test_search_picks_the_lowest_validation_loss(noisy: Dataset) -> None:
    # the better setting second, so the first-listed is not chosen by default
    weak, strong = Candidate((2,), 1e-4, 0.0, 64), Candidate((64,), 3e-3, 1e-4, 64)
    spec = _spec(noisy, (weak, strong))
    cfg = TrainConfig.defaults(spec, device="cpu", epochs=40)
    chosen = search(spec, cfg, ModelConfig("t", 6, 2, weak.hidden, standardize=True), noisy, progress=False)
    found = chosen.result.metrics["search"]
    losses = [c["best_val_loss"] for c in found["candidates"]]
    assert found["chosen"] == int(np.argmin(losses)) == 1
    assert chosen.model_config.hidden == (64,) and chosen.config.lr == 3e-3
    assert _val_log_loss(chosen.result.model, noisy, cfg.seed) == pytest.approx(min(losses), abs=2e-6)


def test_class_recall_and_never_predicted() -> None:
    proba = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.2, 0.8, 0.0], [0.7, 0.3, 0.0], [0.5, 0.0, 0.5]])
    y = np.array([0, 0, 1, 2, 2])  # argmax: 0, 0, 1, 0, 0 (the tie goes to the first)
    r = class_recall(proba, y, ("a", "b", "c"))
    assert r == {"a": {"rows": 2, "recall": 1.0, "predicted": 4}, "b": {"rows": 1, "recall": 1.0, "predicted": 1},
                 "c": {"rows": 2, "recall": 0.0, "predicted": 0}}
    note = never_predicted(r)
    assert note is not None and "'c' (2 rows)" in note and "\n" not in note
    assert never_predicted(class_recall(proba[:3], y[:3], ("a", "b", "c"))) is None


def _frame(minority: float, seed: int = 1, rows: int = 300, signal: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(rows) < minority, "rare", "common")
    x = rng.normal(size=(rows, 4)) if signal else rng.integers(0, 2, size=(rows, 4)).astype(float)
    if signal:
        x[:, 0] += 3.0 * (y == "rare")
    return pd.DataFrame({**{f"f{i}": x[:, i] for i in range(4)}, "label": y})


def _train_warnings(frame: pd.DataFrame, out: Path) -> tuple[list[str], dict]:  # type: ignore[type-arg]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        r = train_data(frame, "label", out, name="w", cv=0, hidden=(16,), epochs=60, lr=0.01, device="cpu")
    return [str(w.message) for w in seen if issubclass(w.category, DataWarning)], r.metrics


def test_never_predicted_minority_is_warned(tmp_path: Path) -> None:
    # 6% rare rows and 16 cells of binary noise: no cell holds a rare majority, so a calibrated model never puts
    # 'rare' above 1/2
    said, metrics = _train_warnings(_frame(0.06, signal=False), tmp_path)
    lines = [s for s in said if "never predicts" in s]
    assert len(lines) == 1 and "'rare'" in lines[0] and "\n" not in lines[0]
    assert metrics["class_recall"]["rare"]["predicted"] == 0 and metrics["never_predicted"]
    said, metrics = _train_warnings(_frame(0.5), tmp_path)
    assert not [s for s in said if "never predicts" in s] and metrics["never_predicted"] is None
    assert min(r["recall"] for r in metrics["class_recall"].values()) > 0.8


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    from edgeclf.export.pipeline import export_artifact

    out = tmp_path_factory.mktemp("recipe")
    frame = _frame(0.4, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        train_data(frame, "label", out, name="mine", cv=0, epochs=40, device="cpu")
    export_artifact(out / "mine", batch_sizes=(1,))
    return out / "mine", frame


def test_baselines_in_metrics_card_and_info(exported: tuple[Path, pd.DataFrame]) -> None:
    from edgeclf.report.card import model_card

    folder, frame = exported
    metrics = read_json(folder / METRICS)
    base = metrics["baselines"]
    assert set(base) == {"logistic_regression", "mlp", "hist_gradient_boosting"}
    for b in base.values():
        assert {"accuracy", "log_loss", "ece", "brier"} <= set(b)
        assert b["rows"] == metrics["calibration"]["test"]["rows"]
    # the logistic baseline's accuracy, refitted here on the same stratified 80/20 split
    x, y = frame[[f"f{i}" for i in range(4)]].to_numpy(np.float32), (frame["label"] == "rare").to_numpy().astype(int)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=42, stratify=y)
    ref = Pipeline([("s", StandardScaler()), ("l", LogisticRegression(max_iter=5000))]).fit(x_tr, y_tr)
    assert base["logistic_regression"]["accuracy"] == pytest.approx(np.mean(ref.predict(x_te) == y_te), abs=1e-6)
    assert metrics["search"]["chosen"] in (0, 1) and metrics["early_stopping"]["best_epoch"] >= 1
    assert len(metrics["history"]["val_loss"]) == metrics["early_stopping"]["epochs_run"]

    card = model_card(Manifest.read(folder)[0], metrics, [])
    assert "Scikit-learn baselines" in card and "hist_gradient_boosting" in card and "Recipe search" in card
    assert "| `rare` |" in card and "Early stopping" in card

    result = run_cli("info", folder)
    assert result.exit_code == 0, result.output
    for name in ("this model", "logistic_regression", "mlp", "hist_gradient_boosting"):
        assert name in result.output
    assert f"accuracy {base['mlp']['accuracy']:.2%}" in result.output
