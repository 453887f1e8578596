"""Multi-label tables: several 0/1 label columns per row, one sigmoid output each (binary cross-entropy).

The table is read and checked by edgeclf.tables; this module makes the multi-label table, its split (test, then
validation rows out of the training share), the per-label thresholds (each chosen on the validation rows for that
label's F1: the middle of the near-best thresholds, best_thresholds says why) and the metrics against the baselines
(one-vs-rest logistic regression and scikit-learn's MLPClassifier, which takes multi-label targets natively), all on
the same split. numpy only, but for the baselines (scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from edgeclf.tables.columns import RowNames, check_names, features_matrix, indicator_values, pick_features
from edgeclf.tables.messages import one_line as _error
from edgeclf.tables.read import read_table
from edgeclf.train.tabular import MIN_ROWS, check_row_count

VALIDATION_SHARE = 0.2  # of the training share: where the thresholds are chosen


@dataclass(frozen=True)
class LabelTable:
    x: np.ndarray  # (N, F) float32, finite
    y: np.ndarray  # (N, L) float32 0/1
    labels: tuple[str, ...]
    features: tuple[str, ...]
    source: str
    warnings: tuple[str, ...] = field(default=())


def parse_labels(label: str | Sequence[str]) -> tuple[str, ...]:
    """`a,b,c` or ["a", "b", "c"] -> ("a", "b", "c"); two or more distinct names (a duplicate is refused)."""
    names = tuple(s.strip() for s in (label.split(",") if isinstance(label, str) else [str(v) for v in label]))
    if len(names) < 2 or any(not n for n in names):
        raise _error(f"labels {list(names)}: expected two or more label column names, e.g. --label a,b,c")
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise _error(f"labels {list(names)}: {dup!r} is named twice: expected distinct label columns")
    return names


def load_label_table(source: Any, labels: Sequence[str], features: Sequence[str] | None = None, *,
                     varied: bool = True) -> LabelTable:
    """Read a CSV/Parquet path or DataFrame with the label columns `labels` (each 0/1, true/false or yes/no) and the
    features (default: every other numeric column). Refused, in one line each: a label column missing, with
    another value, or constant (see check_varied; varied=False for a test table, where a label absent from every
    row is a fact to score, not a training problem); a label also named as a feature."""
    raw, where = read_table(source, None)
    names = [str(n) for n in raw.column_names]
    check_names(names, where)
    for label in labels:
        if label not in names:
            raise _error(f"{where}: label column {label!r} not found; columns: {names}")
    check_row_count(raw.num_rows, where, MIN_ROWS if varied else 1)  # a test table: any rows, as for one label
    picked, notes = _features(raw, labels, features, where)
    rows = RowNames(None)
    y = np.stack([indicator_values(raw, label, where, rows) for label in labels], axis=1)  # (N, L)
    if varied:
        check_varied(y, labels, where)
    x = features_matrix(raw, picked, where, rows, impute_hint=False)
    return LabelTable(x, y, tuple(labels), tuple(picked), where, tuple(notes))


def _features(raw: Any, labels: Sequence[str], features: Sequence[str] | None,
              where: str) -> tuple[list[str], list[str]]:
    """(feature names, notes on the columns left out): as the single-label default (tables/columns.py), numeric
    columns less the id-like ones, but text columns are left out: a multi-label model takes no categories yet."""
    return pick_features(raw, labels, features, where, categories=False)


def check_varied(y: np.ndarray, labels: Sequence[str], where: str) -> None:
    """Refused, not warned: a label with no positive (or no negative) row has nothing to learn, no threshold to
    choose and no F1 or ROC AUC to report; a model that kept it would answer its prior and claim nothing."""
    check_positives(y.sum(axis=0), len(y), labels, where)


def check_positives(pos: np.ndarray, rows: int, labels: Sequence[str], where: str) -> None:
    """check_varied from the counts: pos (L,) positive rows of each label among rows."""
    for j, label in enumerate(labels):
        if pos[j] == 0 or pos[j] == rows:
            value = "1 (present)" if pos[j] else "0 (absent)"
            raise _error(f"{where}: label column {label!r} is {value} on every row: a constant label cannot be "
                         f"learned; drop it from --label")


def split(x: np.ndarray, y: np.ndarray, seed: int, test_share: float = 0.2) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"fit", "validation", "test"}: a seeded split stratified on each row's rarest present label (rarest_label):
    ceil(test_share x its rows) of each stratum are test rows (0: none, as for a given test table or a
    cross-validation fold), then ceil(VALIDATION_SHARE x the rest) of each stratum are held out for the thresholds,
    so a rare label has positives in every part its count allows (the streamed split does the same by row hash)."""
    rng = np.random.default_rng(seed)
    strata = rarest_label(y)
    test = _take(strata, test_share, rng)
    rest = np.setdiff1d(np.arange(len(y)), test)
    validation = rest[_take(strata[rest], VALIDATION_SHARE, rng)]
    parts = {"test": test, "validation": validation, "fit": np.setdiff1d(rest, validation)}
    return {k: (x[np.sort(v)], y[np.sort(v)]) for k, v in parts.items()}


def _take(strata: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of ceil(share x n) seeded-random rows of each stratum (n its rows)."""
    order = rng.permutation(len(strata))
    taken = [rows[:int(np.ceil(share * len(rows)))] for s in np.unique(strata) for rows in [order[strata[order] == s]]]
    return np.sort(np.concatenate(taken)) if taken else np.zeros(0, np.int64)


def rarest_label(y: np.ndarray, rates: np.ndarray | None = None) -> np.ndarray:
    """(N,) int: each row's stratum for a stratified split of multi-label rows, its rarest present label (by the
    positive rates, default these rows'), or L for a row with none. Every label's positives then spread over the
    folds as evenly as stratification by one class would, the rarest label's exactly; the common labels follow
    from the rows they share (a simple form of iterative stratification, Sechidis et al. 2011)."""
    rates = y.mean(axis=0) if rates is None else rates
    order = np.argsort(rates, kind="stable")  # (L,) rarest first
    present = y[:, order] > 0.5  # (N, L) in that order
    strata: np.ndarray = np.where(present.any(axis=1), order[present.argmax(axis=1)], y.shape[1])
    return strata


def best_thresholds(p: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    """Per label, a threshold for that label's F1 chosen on these (validation) rows: the middle of the near-best
    thresholds, not the noisy argmax. The candidates are the midpoints between consecutive distinct probabilities
    (and 0.5); the near-best are those whose F1 is within one row of the best, 1/positives (catching one positive
    more or less moves F1 by 2/(positives + predicted), about that near the best); the threshold is the midpoint of
    the lowest and the highest of them. 0.5 for a label without a positive. The band never reaches below half the
best F1: with one or two validation positives one row is most of F1 (1/1 would take every threshold, the labels
unread), so there the near-best are the thresholds that keep at least half the best F1.

    Why not the argmax (the rule before): with few positives, or a label the model separates almost perfectly, the
    F1 curve is flat at its top, which step is highest rests on a row or two, and the argmax (ties: nearest 0.5)
    sits at an edge of that plateau, one row from an error. Over 50 re-splits of the held-out (validation + test)
    rows of 4 training runs on each of 5 tables, the middle gave as high or higher mean test macro-F1 (+0.0 to +0.5
    points) and micro-F1 (+0.1 to +0.2) than the argmax on every table. Not chosen: the plug-in rule for calibrated
    probabilities (half the best F1, Lipton et al. 2014, the best F1 from the labels or from the probabilities)
    lost 0.3 to 1.1 points of macro-F1 on one or two tables (it trusts a calibration a rare label may not have);
    shrinking toward 0.5 lost on three. docs/benchmarks.md has the tables."""
    out = []
    for j in range(y.shape[1]):
        pj, yj = p[:, j].astype(np.float64), y[:, j] > 0.5
        if not yj.any():
            out.append(0.5)
            continue
        cands, f1 = _f1_curve(pj, yj)
        floor = max(f1.max() - 1.0 / yj.sum(), f1.max() / 2)  # one row, but never below half the best
        near = cands[f1 >= floor - 1e-12]  # the slack: a float tie at the edge counts as within
        out.append(round(float(np.float32((near.min() + near.max()) / 2)), 6))
    return tuple(out)


def _f1_curve(p: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(candidate thresholds, the F1 of `p >= t` at each) for one label's probabilities p (N,) and truth (N,) bool:
    the midpoints between consecutive distinct probabilities, then 0.5."""
    u = np.unique(p)
    cands = np.concatenate([(u[:-1] + u[1:]) / 2, [0.5]])
    ordered, positives = np.sort(p), np.sort(p[truth])
    predicted = len(p) - np.searchsorted(ordered, cands, "left")  # rows with p >= t
    caught = len(positives) - np.searchsorted(positives, cands, "left")  # positives with p >= t
    return cands, 2.0 * caught / (predicted + len(positives))


def metrics(p: np.ndarray, y: np.ndarray, thresholds: Sequence[float], labels: Sequence[str]) -> dict[str, Any]:
    """Subset accuracy, Hamming loss, micro/macro F1, and per label precision, recall, F1, ROC AUC and ECE."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support, roc_auc_score

    truth = y > 0.5  # (N, L)
    pred = p >= np.asarray(thresholds, np.float32)[None, :]  # (N, L)
    prec, rec, f1, support = precision_recall_fscore_support(truth, pred, average=None, zero_division=0)
    per = {}
    for j, name in enumerate(labels):
        both = 0 < truth[:, j].sum() < len(truth)
        per[name] = {"precision": _r(prec[j]), "recall": _r(rec[j]), "f1": _r(f1[j]), "support": int(support[j]),
                     "roc_auc": _r(roc_auc_score(truth[:, j], p[:, j])) if both else None,
                     "ece": _r(label_ece(p[:, j], truth[:, j])),
                     "positive_rate": _r(truth[:, j].mean())}
    return {"subset_accuracy": _r((pred == truth).all(axis=1).mean()), "hamming_loss": _r((pred != truth).mean()),
            "micro_f1": _r(f1_score(truth, pred, average="micro", zero_division=0)),
            "macro_f1": _r(f1_score(truth, pred, average="macro", zero_division=0)), "per_label": per}


def label_ece(p: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    """One label's expected calibration error: over 10 equal-width bins of P(label), the row-weighted gap between
    the mean probability and the share of rows that have the label."""
    which = np.minimum((p.astype(np.float64) * bins).astype(np.int64), bins - 1)  # (N,)
    gap = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            gap += m.mean() * abs(float(p[m].mean()) - float(truth[m].mean()))
    return gap


def _r(v: Any) -> float:
    return round(float(v), 6)


def baselines(fit: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], labels: Sequence[str],
              seed: int) -> dict[str, Any]:
    """One-vs-rest logistic regression and MLPClassifier, standardised, trained on the same fit rows and scored on
    the same test rows at their own decision rule (0.5)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    models = {"ovr_logreg": OneVsRestClassifier(LogisticRegression(max_iter=2000)),
              "mlp": MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=500, random_state=seed)}
    out = {}
    for name, est in models.items():
        pipe = make_pipeline(StandardScaler(), est)
        with warnings.catch_warnings():  # a baseline that stops at max_iter is still the baseline we report
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipe.fit(fit[0], fit[1].astype(np.int64))
        p = np.asarray(pipe.predict_proba(test[0]), np.float32)  # (N, L)
        out[name] = metrics(p, test[1], [0.5] * len(labels), labels)
    return out


FOLD_SCORES = ("subset_accuracy", "hamming_loss", "micro_f1", "macro_f1")


def fold_summary(scores: Sequence[dict[str, Any]], labels: Sequence[str], stratified: str) -> dict[str, Any]:
    """metrics.json's "cv" of a multi-label model: per fold its test metrics (metrics() at the fold's own
    thresholds), their mean and standard deviation, and each label's F1 mean and std."""
    def spread(values: Sequence[float]) -> dict[str, float]:
        return {"mean": _r(np.mean(values)), "std": _r(np.std(values))}

    return {"k": len(scores), "stratified": stratified,
            **{k: spread([s[k] for s in scores]) for k in FOLD_SCORES},
            "per_label_f1": {n: spread([s["per_label"][n]["f1"] for s in scores]) for n in labels},
            "folds": [{k: s[k] for k in FOLD_SCORES} for s in scores]}


THRESHOLD_RULE = ("per label, on the validation rows: the middle of the thresholds whose F1 is within one row "
                  "(1/positives) of the best and at least half of it")
TARGET_MARGIN = 0.01  # micro- and macro-F1 within 1 point of the MLP baseline


def summary(p_test: np.ndarray, parts: dict[str, tuple[np.ndarray, np.ndarray]], thresholds: tuple[float, ...],
            labels: Sequence[str], seed: int) -> dict[str, Any]:
    """metrics.json's multi-label part: the test metrics at the chosen thresholds and at 0.5, the baselines', and
    whether the target (micro and macro F1 within TARGET_MARGIN of the MLP baseline's) is met."""
    y_test = parts["test"][1]
    mine = metrics(p_test, y_test, thresholds, labels)
    base = baselines(parts["fit"], parts["test"], labels, seed)
    met = all(mine[k] >= base["mlp"][k] - TARGET_MARGIN for k in ("micro_f1", "macro_f1"))
    return {"kind": "multilabel", "labels": list(labels), "thresholds": dict(zip(labels, thresholds)),
            "threshold_rule": THRESHOLD_RULE,
            "rows": {k: len(v[1]) for k, v in parts.items()},
            "test": mine, "test_at_0_5": metrics(p_test, y_test, [0.5] * len(labels), labels), "baselines": base,
            "target": f"micro- and macro-F1 >= the MLPClassifier baseline's - {TARGET_MARGIN:.0%}", "target_met": met}
