"""The default recipe of a user's table against scikit-learn on several tables (issue 23 item 4).

For each table and each of --splits stratified 80/20 splits (random_state 0, 1, ...): the default recipe (the
search over train.tasks.CANDIDATES with early stopping), the recipe before it (one layer of 32, AdamW lr 0.01,
weight decay 0.5, 200 full-batch epochs), and the baselines of train.datasets.BASELINES, all on the same rows.
Prints a markdown table of the means over the splits (accuracy and log loss with their standard deviation over the
splits: on a test set of 30-500 rows one split's figure moves by points), ECE, training seconds.

    .venv/bin/python scripts/eval_tables.py [--splits 3] [--only sensor,mixed]
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any, Callable

import numpy as np

from edgeclf.train.settings import pin_arithmetic

pin_arithmetic()

from edgeclf.train.calibration import calibration_summary  # noqa: E402
from edgeclf.train.datasets import BASELINES, load_builtin  # noqa: E402
from edgeclf.train.loop import TrainConfig, train  # noqa: E402
from edgeclf.train.model import ModelConfig  # noqa: E402
from edgeclf.train.search import search  # noqa: E402
from edgeclf.train.tasks import Dataset, table_spec, user_table_spec  # noqa: E402

Table = tuple[np.ndarray, np.ndarray, str]  # x (N, F), y (N,), what it is


def _sensor(n: int = 4000, seed: int = 0) -> Table:
    """6 sensor readings on scales 1e-3 to 1e4; the class is a nonlinear rule of three of them, 5% flipped."""
    rng = np.random.default_rng(seed)
    scales = np.array([1e-3, 1.0, 50.0, 1e4, 0.1, 300.0])
    z = rng.normal(size=(n, 6))
    y = ((np.sin(2 * z[:, 0]) + z[:, 1] * z[:, 2] + 0.5 * z[:, 3] ** 2) > 0.6).astype(np.int64)
    y = np.where(rng.random(n) < 0.05, 1 - y, y)
    return z * scales + rng.normal(size=6) * scales * 3, y, "6 readings on scales 1e-3..1e4, nonlinear rule, 5% noise"


def _mixed(seed: int = 0) -> Table:
    """make_classification with 3 classes, redundant and pure-noise columns, an interaction, mixed scales."""
    from sklearn.datasets import make_classification

    x, y = make_classification(2500, 12, n_informative=5, n_redundant=2, n_classes=3, n_clusters_per_class=2,
                               flip_y=0.03, random_state=seed)
    x = np.c_[x, x[:, 0] * x[:, 1]] * np.logspace(-2, 3, 13)  # an interaction column; scales 0.01..1000
    return x, y, "make_classification 3 classes, 5 informative + 2 redundant + 5 noise, interaction, mixed scales"


def _imbalanced(seed: int = 0) -> Table:
    from sklearn.datasets import make_classification

    x, y = make_classification(3000, 10, n_informative=4, weights=[0.92, 0.08], flip_y=0.01, random_state=seed)
    return x * np.array([1, 10, 100, 1, 0.1, 1, 1, 1000, 1, 1]), y, "make_classification, 8% minority class"


def _messy(seed: int = 0) -> Table:
    """An id column, a string category and 5% missing cells; evaluated here with the id and category columns
    dropped and the rows with a missing cell left out (the whole table, scripts/mixed_table.py, goes through
    `edgeclf train --data ... --impute median`: docs/benchmarks.md, "Tables")."""
    from sklearn.datasets import make_classification

    x, y = make_classification(3000, 6, n_informative=4, random_state=seed)
    rng = np.random.default_rng(seed)
    x[rng.random(x.shape) < 0.05 / 1.0] = np.nan  # 5% of the numeric cells missing
    keep = ~np.isnan(x).any(axis=1)
    return x[keep], y[keep], f"id + category dropped, rows with a missing cell left out ({keep.sum()} of 3000 kept)"


def _builtin(name: str) -> Callable[[], Table]:
    def make() -> Table:
        t = load_builtin(name)
        return t.x, t.y, f"scikit-learn's {name}"

    return make


TABLES: dict[str, Callable[[], Table]] = {
    **{n: _builtin(n) for n in ("iris", "wine", "breast_cancer", "digits")},
    "sensor": _sensor, "mixed": _mixed, "imbalanced": _imbalanced, "messy": _messy,
}


def _split(x: np.ndarray, y: np.ndarray, seed: int) -> Dataset:
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x.astype(np.float32), y.astype(np.int64), test_size=0.2,
                                              random_state=seed, stratify=y)
    return Dataset(x_tr, y_tr, x_te, y_te)


def _ours(name: str, data: Dataset, seed: int, old: bool) -> tuple[dict[str, Any], float]:
    classes = tuple(str(c) for c in range(int(data.y_train.max()) + 1))
    features = tuple(f"f{i}" for i in range(data.x_train.shape[1]))
    make = (table_spec if old else user_table_spec)
    spec = make(name, lambda n, s: (data.x_train, data.y_train), classes, features, len(data.y_train) * 5 // 4,
                "eval", cv=0)
    cfg = TrainConfig.defaults(spec, device="cpu", seed=seed)
    model_cfg = ModelConfig(name, len(features), len(classes), spec.hidden, standardize=True)
    start = time.perf_counter()
    result = train(spec, cfg, model_cfg, data) if old else search(spec, cfg, model_cfg, data, False).result
    return result.metrics["calibration"]["test"], time.perf_counter() - start


def _baselines(data: Dataset, seed: int) -> dict[str, tuple[dict[str, Any], float]]:
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    out = {}
    n_classes = int(data.y_train.max()) + 1
    for name, (_, make) in BASELINES.items():
        start = time.perf_counter()
        with warnings.catch_warnings(), threadpool_limits(1):  # one thread each, as the model trains
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = make(seed).fit(data.x_train, data.y_train)
        seconds = time.perf_counter() - start
        proba = np.zeros((len(data.y_test), n_classes))
        proba[:, est.classes_] = est.predict_proba(data.x_test)
        out[name] = (calibration_summary(proba, data.y_test), seconds)
    return out


MODELS = ("before", "default", "logistic_regression", "mlp", "hist_gradient_boosting")


def evaluate(name: str, splits: int) -> tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(header, per model the means over the splits of (accuracy, log loss, ECE, seconds), and their standard
    deviations (ddof 1; 0 for one split))."""
    x, y, what = TABLES[name]()
    got: dict[str, list[tuple[float, float, float, float]]] = {m: [] for m in MODELS}
    for seed in range(splits):
        data = _split(x, y, seed)
        runs = {"before": _ours(name, data, seed, old=True), "default": _ours(name, data, seed, old=False),
                **_baselines(data, seed)}
        for m, (c, s) in runs.items():
            got[m].append((c["accuracy"], c["log_loss"], c["ece"], s))
    header = f"{name} ({len(y):,} rows, {x.shape[1]} features, {len(np.unique(y))} classes; {what})"
    spread = {m: np.std(np.array(v), axis=0, ddof=1) if splits > 1 else np.zeros(4) for m, v in got.items()}
    return header, {m: np.mean(np.array(v), axis=0) for m, v in got.items()}, spread


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=3)
    ap.add_argument("--only", default=",".join(TABLES))
    args = ap.parse_args()
    print(f"Means ± standard deviations over {args.splits} stratified 80/20 splits (random_state 0..{args.splits - 1}); "
          "seconds: training one model (the default: every candidate of the search, early stopping included).\n")
    print("| table | model | accuracy | log loss | ECE | train s |\n|---|---|---|---|---|---|")
    verdicts = []
    for name in args.only.split(","):
        header, r, sd = evaluate(name, args.splits)
        for m in MODELS:
            (acc, ll, ece, s), (acc_sd, ll_sd) = r[m], sd[m][:2]
            print(f"| {header if m == 'before' else ''} | {m} | {acc:.2%} ± {acc_sd:.2%} | {ll:.4f} ± {ll_sd:.4f} | "
                  f"{ece:.4f} | {s:.1f} |")
        best = max(r["mlp"][0], r["hist_gradient_boosting"][0])
        ok_acc, ok_ll = r["default"][0] >= best - 0.01, r["default"][1] <= r["mlp"][1] + 0.02
        verdicts.append(f"{name}: accuracy within 1 point of the best of MLP/HGB: {'yes' if ok_acc else 'NO'} "
                        f"({100 * (r['default'][0] - best):+.2f} points); log loss <= MLP's + 0.02: "
                        f"{'yes' if ok_ll else 'NO'} ({r['default'][1] - r['mlp'][1]:+.4f})")
    print("\n" + "\n".join(f"- {v}" for v in verdicts))


if __name__ == "__main__":
    main()
