"""Real datasets from scikit-learn's bundled copies (no download) as Tables, and the scikit-learn baselines every
tabular run is compared with: logistic regression (also cross-validated), an MLP and gradient-boosted trees."""

from __future__ import annotations

import re
import warnings
from typing import Any, Callable

import numpy as np

from edgeclf.runtime.errors import InputError
from edgeclf.train.tabular import DataWarning, Table

BUILTIN = ("iris", "wine", "breast_cancer", "digits")


def identifier(name: str) -> str:
    """A feature name usable as an identifier everywhere downstream: "sepal length (cm)" -> "sepal_length_cm"."""
    return re.sub(r"\W+", "_", name, flags=re.ASCII).strip("_") or "feature"


def load_builtin(name: str) -> Table:
    """One of BUILTIN as a Table: the real feature names (as identifiers) and class names (sklearn's target_names)."""
    from sklearn import datasets

    if name not in BUILTIN:
        raise InputError(f"unknown dataset {name!r}: expected one of {', '.join(BUILTIN)}")
    bunch: Any = getattr(datasets, f"load_{name}")()
    features = tuple(identifier(str(f)) for f in bunch.feature_names)
    if len(set(features)) != len(features):  # a guard for future sklearn names, not seen in the four above
        raise InputError(f"dataset {name!r}: feature names collide once made identifiers: {features}")
    return Table(
        x=np.asarray(bunch.data, dtype=np.float32),  # (N, F)
        y=np.asarray(bunch.target, dtype=np.int64),  # (N,) already 0..C-1 in target_names order
        classes=tuple(str(c) for c in bunch.target_names),
        features=features,
        source=f"scikit-learn's bundled {name} dataset",
    )


def make_logreg() -> Any:
    """The baseline estimator: standardise, then multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression(max_iter=5000))])


def cv_accuracy(
    make_estimator: Callable[[], Any], x: np.ndarray, y: np.ndarray, *, k: int, seed: int
) -> tuple[float, float]:
    """(mean, std) accuracy over StratifiedKFold(k, shuffle, seed): a fresh estimator fitted per fold."""
    accs = []
    for tr, te in stratified_folds(y, k, seed):
        est = make_estimator()
        est.fit(x[tr], y[tr])
        accs.append(float(np.mean(np.asarray(est.predict(x[te])) == y[te])))
    return float(np.mean(accs)), float(np.std(accs))


def stratified_folds(strata: np.ndarray, k: int, seed: int, what: str = "class") -> list[tuple[np.ndarray, np.ndarray]]:
    """StratifiedKFold(k, shuffle, seed) over rows whose stratum is strata (N,) int: (train, test) index pairs.
    what: the strata's name in the messages (a class; a multi-label row's rarest label)."""
    from sklearn.model_selection import StratifiedKFold

    check_folds(strata, k, what)
    with warnings.catch_warnings():
        # check_folds said it in words; sklearn's own warning would repeat it
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(strata, strata))


def check_folds(y: np.ndarray, k: int, what: str = "class") -> None:
    counts = np.bincount(y)  # (C,)
    if k < 2 or k > len(y):
        raise InputError(f"cross-validation folds k={k}: expected 2 <= k <= {len(y)} (the number of rows)")
    if k > counts.max():
        raise InputError(f"cross-validation folds k={k}: more than the largest {what}'s {counts.max()} rows")
    if k > counts[counts > 0].min():
        warnings.warn(
            f"cross-validation with k={k} folds: the smallest {what} has {counts[counts > 0].min()} rows, "
            "so some folds test without it",
            DataWarning,
            stacklevel=3,
        )


def logreg_baseline(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_te: np.ndarray,
    y_te: np.ndarray,
    x_all: np.ndarray,
    y_all: np.ndarray,
    *,
    k: int,
    seed: int,
) -> dict[str, Any]:
    """The baseline's test accuracy on the given split and its k-fold CV accuracy on all rows."""
    model = make_logreg().fit(x_tr, y_tr)
    test_acc = float(np.mean(model.predict(x_te) == y_te))
    cv_mean, cv_std = cv_accuracy(make_logreg, x_all, y_all, k=k, seed=seed)
    return {"test_accuracy": test_acc, "cv_mean": cv_mean, "cv_std": cv_std, "k": k}


MACHINE_FEATURES = ("quality", "air_temperature_K", "process_temperature_K", "rotational_speed_rpm", "torque_Nm",
                    "tool_wear_min")
MACHINE_LABELS = ("tool_wear", "heat_dissipation", "power", "overstrain")


def machine_faults(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A milling machine's readings and its fault codes, drawn by the rules of the AI4I 2020 predictive-maintenance
    simulation (Matzka 2020, UCI): product quality L/M/H (0/1/2), air temperature ~300 K (sd 2), process
    temperature air + 10 K (sd 1), rotational speed ~1538 rpm (sd 180), torque ~40 Nm (sd 10, falling with speed),
    tool wear 0-250 min. Faults from the true values: tool wear >= 200 min; heat dissipation (process - air
    < 8.6 K at < 1380 rpm: rare, ~1.5%); power outside 3.5-9 kW; overstrain (wear x torque above 11,000/12,000/
    13,000 min Nm for L/M/H). The features are the readings with sensor noise, so a label near its rule's edge is
    not certain from them. x (n, 6) float32, y (n, 4) float32 0/1."""
    rng = np.random.default_rng(seed)
    quality = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    air = 300 + 2 * rng.standard_normal(n)
    process = air + 10 + rng.standard_normal(n)
    rpm = np.maximum(1168, 1538 + 180 * rng.standard_normal(n))
    torque = np.clip(40 + 10 * rng.standard_normal(n) - 0.045 * (rpm - 1538), 3, 77)
    wear = rng.uniform(0, 250, n) + 2 * quality
    power = torque * rpm * 2 * np.pi / 60  # W
    y = np.stack([wear >= 200, (process - air < 8.6) & (rpm < 1380), (power < 3500) | (power > 9000),
                  wear * torque > np.array([11000, 12000, 13000])[quality]], axis=1)  # (n, 4)
    noise = [0.0, 0.3, 0.3, 10.0, 1.0, 2.0]  # sensor noise per reading
    x = np.stack([quality, air, process, rpm, torque, wear], axis=1) + rng.standard_normal((n, 6)) * noise
    return x.astype(np.float32), y.astype(np.float32)


def make_mlp(seed: int) -> Any:
    """scikit-learn's MLPClassifier as a user would first try it: standardised inputs, defaults, 500 iterations."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("mlp", MLPClassifier(max_iter=500, random_state=seed))])


def make_hgb(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed)


BASELINES: dict[str, tuple[str, Callable[[int], Any]]] = {
    "logistic_regression": ("StandardScaler + LogisticRegression", lambda seed: make_logreg()),
    "mlp": ("StandardScaler + MLPClassifier(max_iter=500)", make_mlp),
    "hist_gradient_boosting": ("HistGradientBoostingClassifier", make_hgb),
}


BASELINE_ROWS = 10_000  # baselines fit on at most this many training rows: a big table's MLP would take minutes


def baselines(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, *, n_classes: int,
              seed: int) -> dict[str, dict[str, Any]]:
    """Each of BASELINES fitted on the training rows (at most BASELINE_ROWS of them) and scored on the test rows
    like the model (accuracy, log loss, Brier, ECE): the same split, so the numbers compare."""
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from edgeclf.train.calibration import calibration_summary

    x_tr, y_tr = x_tr[:BASELINE_ROWS], y_tr[:BASELINE_ROWS]  # the split shuffled them: a random subset
    out = {}
    for name, (what, make) in BASELINES.items():
        # one thread, like the model's training: on a busy machine OpenMP's spinning threads cost more than they give
        with warnings.catch_warnings(), threadpool_limits(1):
            # an MLP or logistic fit that stops at its iteration cap is still the baseline a user would get
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = make(seed).fit(x_tr, y_tr)
        proba = np.zeros((len(y_te), n_classes))  # (N, C): columns by class index, whatever est.classes_ holds
        proba[:, np.asarray(est.classes_, dtype=np.int64)] = est.predict_proba(x_te)
        out[name] = {"model": what, "train_rows": len(y_tr), **calibration_summary(proba, y_te)}
    return out
