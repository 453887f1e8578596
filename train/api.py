"""One call per stage for the CLI and for Python users: train a task, or a table of your own, into its folder."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeclf.artifact.store import writable_parent
from edgeclf.runtime.errors import InputError
from edgeclf.tables.stats import FeatureStats
from edgeclf.train.checkpoint import TaskInfo, save_training
from edgeclf.train.loop import XY, BatchSource, FileBatches, TrainConfig, TrainResult, train
from edgeclf.train.model import ModelConfig
from edgeclf.train.search import search, searches
from edgeclf.train.settings import SPLIT_SEED
from edgeclf.train.stream import HOLD_OUT, SHUFFLE_ROWS, TEST_MAX_ROWS
from edgeclf.train.tasks import Dataset, TaskSpec, get_task, table_spec, user_table_spec

# k-fold cross-validation by default only below this many rows: each fold trains the searched setting again with
# early stopping; above it, the baselines on the same split are the comparison
CV_MAX_ROWS = 2_000
CV_MARGIN = 0.01  # a table task meets its target when its CV accuracy >= the baseline's - 1 point


def train_task(task: str, out: Path | str = "artifacts", *, hidden: tuple[int, ...] | None = None,
               activation: str | None = None, progress: bool = False, **overrides: object) -> TrainResult:
    """Train `task` with its registry defaults (overridable) and write out/<task>/ checkpoint + metrics.

    overrides: any TrainConfig field (epochs, lr, optimizer, seed, batch_size, device, weight_decay).
    """
    return train_spec(get_task(task), out, hidden=hidden, activation=activation, progress=progress,
                      **overrides)  # type: ignore[arg-type]


def train_data(source: Any, label: str | Sequence[str], out: Path | str = "artifacts", *,
               features: Sequence[str] | None = None,
               name: str | None = None, test: Any = None, cv: int | None = None, hidden: tuple[int, ...] | None = None,
               activation: str | None = None, progress: bool = False, stream: bool | None = None,
               impute: str | None = None, **overrides: object) -> TrainResult:
    """Train on a table: a CSV (with header) or Parquet path, or a pandas DataFrame, with `label` as the class
    column and every numeric column (or `features`) as input; writes out/NAME/ like train_task.

    test: a test table (same columns) instead of the stratified 80/20 split; cv: k-fold cross-validation of this
    model and of a logistic-regression baseline (default 5 below 2,000 rows, else none). stream: read the file
    in batches, again every epoch, in bounded memory (train/stream.py); default: only a big file
    (stream.should_stream).

    label: a list of two or more columns (or "a,b,c") trains a multi-label model: one sigmoid output per label,
    each column 0/1, true/false or yes/no (train/multilabel.py); test, cv and stream work as for one label (cv:
    only when asked; folds and the held-out rows stratified on each row's rarest label); impute does not apply.

    impute="median": empty cells of a feature take the training split's median, inside the exported model too
    (train/impute.py says why it is off by default)."""
    from edgeclf.train.impute import check_impute
    from edgeclf.train.stream import should_stream
    from edgeclf.train.tabular import load_table, sanitize_name

    check_impute(impute)
    if not isinstance(label, str) or "," in label:
        if impute:
            raise InputError(f"impute={impute!r} is not made for multi-label tables: leave it out (an empty cell is "
                             "then an error naming its row)")
        return _train_labels(source, label, out, features=features, name=name, test=test, cv=cv, stream=stream,
                             hidden=hidden, activation=activation, progress=progress, **overrides)

    if should_stream(source, stream):
        return _train_streamed(source, label, out, features=features, name=name, test=test, cv=cv, hidden=hidden,
                               activation=activation, progress=progress, impute=impute, **overrides)

    table = load_table(source, label, features, impute=impute)
    test_table = load_table(test, label, reference=table, impute=impute) if test is not None else None
    stem = Path(str(source)).stem if isinstance(source, (str, Path)) else "table"
    spec = user_table_spec(sanitize_name(name or stem), lambda n, s: (table.x, table.y), table.classes,
                           table.features, len(table.y), _describe(source, label, table.features, len(table.y)),
                           cv=_default_cv(cv, table.y))
    for note in table.warnings:
        warnings.warn(note, stacklevel=2)
    data = _split(table, test_table, overrides.get("seed"), test)
    if spec.cv:  # refused before training, not after it
        from edgeclf.train.datasets import check_folds

        check_folds(np.concatenate([data.y_train, data.y_test]).astype(np.int64), spec.cv)
    fill = _impute(table, test_table, data) if impute is not None else None
    stats = FeatureStats.of(data.x_train)  # once: the checkpoint and the manifest keep these
    stats.standardisation(table.features)  # warns (DataWarning) about a feature constant in training
    cats = tuple(v or () for v in table.categories) if table.categories else None
    return train_spec(spec, out, hidden=hidden, activation=activation, progress=progress, data=data, stats=stats,
                      fill=fill, categories=cats, **overrides)  # type: ignore[arg-type]


def _impute(table: Any, test_table: Any, data: Dataset) -> tuple[float | None, ...] | None:
    """The training split's medians for the features with an empty cell (in either table), applied in place to
    every row in memory (training, test, cross-validation and the baselines see the filled values)."""
    from edgeclf.train.impute import apply_fill, fill_note, median_fill

    empty_cells = np.isnan(table.x).sum(axis=0) + (np.isnan(test_table.x).sum(axis=0) if test_table is not None else 0)
    fill = median_fill(data.x_train, empty_cells > 0, table.features, table.source)
    warnings.warn(fill_note(fill, empty_cells, table.features, table.source), stacklevel=3)
    for x in (table.x, data.x_train, data.x_test, *((test_table.x,) if test_table is not None else ())):
        apply_fill(x, fill or ())
    return fill


def _train_labels(source: Any, label: str | Sequence[str], out: Path | str, *, features: Sequence[str] | None,
                  name: str | None, test: Any, cv: int | None, stream: bool | None, hidden: tuple[int, ...] | None,
                  activation: str | None, progress: bool, **overrides: object) -> TrainResult:
    """train_data for label columns: the table in memory (or streamed: train/stream_labels.py), the validation rows
    for the thresholds split off its rows, the test rows too unless a test table is given."""
    from edgeclf.train.multilabel import load_label_table, parse_labels, split
    from edgeclf.train.stream import should_stream
    from edgeclf.train.tabular import sanitize_name, standardisation

    names = parse_labels(label)
    if should_stream(source, stream):
        return _train_labels_streamed(source, names, out, features=features, name=name, test=test, cv=cv,
                                      hidden=hidden, activation=activation, progress=progress, **overrides)
    table = load_label_table(source, names, features)
    given = load_label_table(test, names, table.features, varied=False) if test is not None else None
    if cv:  # refused before training, not after it
        from edgeclf.train.datasets import check_folds
        from edgeclf.train.multilabel import rarest_label

        rows = np.concatenate([table.y, given.y]) if given is not None else table.y
        with warnings.catch_warnings():  # its note on a small stratum comes once, when the folds are made
            warnings.simplefilter("ignore")
            check_folds(rarest_label(rows), cv, "rarest-label stratum")
    stem = Path(str(source)).stem if isinstance(source, (str, Path)) else "table"
    spec = user_table_spec(sanitize_name(name or stem), lambda n, s: (table.x, table.y), table.labels,
                           table.features, len(table.y), _describe(source, names, table.features, len(table.y)),
                           cv=cv or 0, multilabel=True)
    for note in table.warnings:
        warnings.warn(note, stacklevel=3)
    standardisation(table.x, table.features)  # warns (DataWarning) about a constant feature
    if given is None:
        return train_spec(spec, out, hidden=hidden, activation=activation, progress=progress, **overrides)  # type: ignore[arg-type]
    parts = {**split(table.x, table.y, SPLIT_SEED, test_share=0.0), "test": (given.x, given.y)}
    note = f"given test table {Path(str(test)).name}; {_validation_note(parts)}"
    return train_spec(spec, out, hidden=hidden, activation=activation, progress=progress, parts=parts,
                      split_note=note, **overrides)  # type: ignore[arg-type]


def _train_labels_streamed(path: str | Path, labels: tuple[str, ...], out: Path | str, *,
                           features: Sequence[str] | None, name: str | None, test: Any, cv: int | None,
                           hidden: tuple[int, ...] | None, activation: str | None, progress: bool,
                           **overrides: object) -> TrainResult:
    """_train_labels for a file read in batches (train/stream_labels.py): each epoch reads it again; the test and
    validation rows (held out by hash within each row's rarest-label stratum) and a training sample stay in memory;
    the baselines train on that sample."""
    from edgeclf.train.multilabel import load_label_table
    from edgeclf.train.stream_labels import label_batches, scan_labels

    seed, folder = _stream_start(path, out, name, cv, overrides)
    s = scan_labels(path, labels, features, seed=seed, hold_out=test is None)
    for note in s.file.notes:
        warnings.warn(note, stacklevel=3)
    given = load_label_table(test, labels, s.features, varied=False) if test is not None else None
    parts = {"fit": s.sample, "validation": s.validation, "test": (given.x, given.y) if given else s.test}
    held = (f"given test table {Path(str(test)).name}" if given else
            f"{len(s.test[1]):,} test rows held out")
    note = (f"streamed; {held}, and {len(s.validation[1]):,} validation rows for the thresholds, by the hash of the "
            f"row index with seed {seed} within each row's rarest-label stratum")
    spec = table_spec(folder.name, lambda n, r: s.sample, labels, s.features, s.rows,
                      _describe(path, labels, s.features, s.rows), cv=0, multilabel=True)
    source = FileBatches(lambda size, epoch: label_batches(s, size, epoch), s.train_rows,
                         s.stats.standardisation(s.features))  # warns (DataWarning) about a constant feature
    metrics = {"stream": {"rows": s.rows, "train_rows": s.train_rows, "test_rows": len(parts["test"][1]),
                          "validation_rows": len(s.validation[1]), "train_metrics_rows": len(s.sample[1]),
                          "shuffle_rows": SHUFFLE_ROWS, "stratified": "on each row's rarest present label"}}
    return train_spec(spec, out, hidden=hidden, activation=activation, progress=progress, source=source,
                      stats=s.stats, metrics=metrics, parts=parts, split_note=note, **overrides)  # type: ignore[arg-type]


def _stream_start(path: Path | str, out: Path | str, name: str | None, cv: int | None,
                  overrides: dict[str, object]) -> tuple[int, Path]:
    """What both streamed flows check before reading the file: no cross-validation (it needs the rows in memory), the
    split seed, and an output folder whose parent can be written (said before the passes over the file, not after)."""
    from edgeclf.train.tabular import sanitize_name

    if cv:
        raise InputError(f"cross-validation (cv={cv}) needs the table in memory: give cv 0 (--cv 0) or do not stream "
                         "(--no-stream)")
    seed = SPLIT_SEED if overrides.get("seed") is None else int(overrides["seed"])  # type: ignore[call-overload]
    folder = Path(out) / sanitize_name(name or Path(str(path)).stem)
    writable_parent(folder)
    return seed, folder


def _validation_note(parts: dict[str, XY]) -> str:
    from edgeclf.train.multilabel import VALIDATION_SHARE

    return (f"{VALIDATION_SHARE:.0%} of the training rows ({len(parts['validation'][1]):,}) for the thresholds, "
            f"seeded (seed {SPLIT_SEED}), stratified on each row's rarest present label")


def _train_multilabel(spec: TaskSpec, out: Path, cfg: TrainConfig, model_cfg: ModelConfig, progress: bool,
                      parts: dict[str, XY] | None = None, split_note: str | None = None,
                      source: BatchSource | None = None, stats: FeatureStats | None = None,
                      metrics: dict[str, Any] | None = None, searched: bool = False) -> TrainResult:
    """Fit on the fit rows, thresholds on the validation rows (multilabel.best_thresholds), metrics on the test rows,
    beside the baselines trained on the same fit rows; parts: those rows when the caller split them (a given test
    table, a streamed file: its fit rows are then a sample and source reads them all), else a seeded split of the
    task's table. searched: the recipe search (train/search.py) picks the setting, early stopping on those same
    validation rows. spec.cv: k-fold cross-validation of the same steps, at the chosen setting (fold_scores)."""
    from edgeclf.train import multilabel as ml

    if parts is None:
        x, y = spec.make_data(spec.rows, cfg.seed)
        parts = ml.split(x, np.asarray(y, np.float32), SPLIT_SEED)
        split_note = (f"seeded split (seed {SPLIT_SEED}) stratified on each row's rarest present label: "
                      f"{len(parts['test'][1]):,} test rows, then {ml.VALIDATION_SHARE:.0%} of the rest "
                      f"({len(parts['validation'][1]):,} rows) for the thresholds")
    data = Dataset(*parts["fit"], *parts["test"], split_note or "")
    if searched:
        chosen = search(spec, cfg, model_cfg, _label_data(parts), progress)
        result, cfg, model_cfg = chosen.result, chosen.config, chosen.model_config
        thresholds, p_test = label_decisions(result, parts)
    else:
        result, thresholds, p_test = fit_labels(spec, cfg, model_cfg, parts, progress, source)
    result.metrics.update(metrics or {})
    result.metrics.update(ml.summary(p_test, parts, thresholds, spec.classes, cfg.seed))
    if spec.cv:
        result.metrics["cv"] = fold_scores(spec, cfg, model_cfg, parts)
    save_training(result, spec, data, out, TaskInfo.of(spec, data, stats, thresholds))
    return result


def fit_labels(spec: TaskSpec, cfg: TrainConfig, model_cfg: ModelConfig, parts: dict[str, XY], progress: bool = False,
               source: BatchSource | None = None) -> tuple[TrainResult, tuple[float, ...], np.ndarray]:
    """(the trained model, its thresholds chosen on the validation rows, its test probabilities (N, L))."""
    result = train(spec, cfg, model_cfg, _label_data(parts), progress=progress, source=source)
    return (result, *label_decisions(result, parts))


def _label_data(parts: dict[str, XY]) -> Dataset:
    """The fit and test rows, and the validation rows for early stopping (a recipe with patience). Early stopping
    watches the rows the thresholds are chosen on rather than a split of the fit rows: the model then trains on the
    very rows the baselines do, and a setting or an epoch picked by a smooth loss over every label biases a
    per-label F1 threshold little; the test rows, which score both, are never looked at."""
    return Dataset(*parts["fit"], *parts["test"], validation=parts["validation"])


def label_decisions(result: TrainResult, parts: dict[str, XY]) -> tuple[tuple[float, ...], np.ndarray]:
    """(the thresholds chosen on the validation rows, the test probabilities (N, L))."""
    import torch

    from edgeclf.train.multilabel import best_thresholds

    with torch.no_grad():
        p_val, p_test = (torch.sigmoid(result.model(torch.from_numpy(parts[k][0]))).numpy() for k in ("validation", "test"))
    if "early_stopping" in result.metrics:
        result.metrics["early_stopping"]["validation"] = "the validation rows the thresholds are chosen on"
    return best_thresholds(p_val, parts["validation"][1]), p_test


def fold_scores(spec: TaskSpec, cfg: TrainConfig, model_cfg: ModelConfig, parts: dict[str, XY]) -> dict[str, Any]:
    """k-fold cross-validation of a multi-label model over every row in memory (fit, validation and test), folds
    stratified on each row's rarest label (multilabel.rarest_label): each fold fits, chooses its thresholds on
    VALIDATION_SHARE of its training rows and is scored on its test fold."""
    from edgeclf.train import multilabel as ml
    from edgeclf.train.datasets import stratified_folds

    x = np.concatenate([parts[k][0] for k in ("fit", "validation", "test")])
    y = np.concatenate([parts[k][1] for k in ("fit", "validation", "test")])
    scores = []
    for a, b in stratified_folds(ml.rarest_label(y), spec.cv, cfg.seed, what="rarest-label stratum"):
        fold = {**ml.split(x[a], y[a], cfg.seed, test_share=0.0), "test": (x[b], y[b])}
        _, thresholds, p = fit_labels(spec, cfg, model_cfg, fold)
        scores.append(ml.metrics(p, y[b], thresholds, spec.classes))
    return ml.fold_summary(scores, spec.classes, f"StratifiedKFold(shuffle, seed {cfg.seed}) on each row's rarest "
                                                 f"present label (none: a stratum of its own)")


def _default_cv(cv: int | None, y: np.ndarray) -> int:
    """cv as asked; by default 5 folds below CV_MAX_ROWS rows when the largest class can fill them (a table too small
    for 5 folds trains without CV rather than fail on a check nobody asked for)."""
    if cv is not None:
        return cv
    return 5 if len(y) < CV_MAX_ROWS and np.bincount(np.asarray(y, np.int64)).max() >= 5 else 0


def _describe(source: Any, label: str | Sequence[str], features: Sequence[str], rows: int) -> str:
    """The task description of a user's table: its name, rows, label column(s) and feature count."""
    where = Path(str(source)).name if isinstance(source, (str, Path)) else "a pandas DataFrame"
    said = f"label column {label!r}" if isinstance(label, str) else f"label columns {list(label)}"
    return f"{where}: {rows:,} rows, {said}, {len(features)} features"


def _split(table: Any, test_table: Any, seed: object, test: Any) -> Dataset:
    from edgeclf.train.tabular import split_table

    s = SPLIT_SEED if seed is None else int(seed)  # type: ignore[call-overload]
    x_tr, y_tr, x_te, y_te = split_table(table, seed=s, test=test_table)
    split = f"given test table {Path(str(test)).name}" if test_table is not None else \
        f"stratified train_test_split(test_size=0.2, random_state={s})"
    return Dataset(x_tr, y_tr, x_te, y_te, split)


def train_spec(spec: TaskSpec, out: Path | str, *, hidden: tuple[int, ...] | None = None,
               activation: str | None = None, progress: bool = False, data: Dataset | None = None,
               source: BatchSource | None = None, stats: FeatureStats | None = None,
               metrics: dict[str, Any] | None = None, fill: tuple[float | None, ...] | None = None,
               categories: tuple[tuple[str, ...], ...] | None = None, parts: dict[str, XY] | None = None,
               split_note: str | None = None, **overrides: object) -> TrainResult:
    """The one training flow of a task, a table in memory and a streamed table. source: where the training rows
    come from (default: data's, in memory); stats: the training rows' statistics, when the caller has them (or
    when they are not all in data);
    metrics: more entries for metrics.json; fill: the model's fill values (train/impute.py); categories: per
    feature its vocabulary, () for a number (tables/categories.py). A multi-label task's rows come as parts
    ({"fit", "validation", "test"}: (x, y (N, L))) with split_note, its split in words (default: the task's own
    table, split by multilabel.split)."""
    folder = Path(out) / spec.name
    writable_parent(folder)  # fail before training, not after
    cfg = TrainConfig.defaults(spec, **overrides)
    model_cfg = _model_config(spec, hidden, activation, fill, categories)
    if spec.multilabel:
        return _train_multilabel(spec, folder, cfg, model_cfg, progress, parts, split_note, source, stats, metrics,
                                 searched=source is None and searches(spec, hidden, overrides))
    data = data or spec.dataset()
    if source is None and searches(spec, hidden, overrides):
        chosen = search(spec, cfg, model_cfg, data, progress)
        result, cfg, model_cfg = chosen.result, chosen.config, chosen.model_config
    else:
        result = train(spec, cfg, model_cfg, data, progress=progress, source=source)
    result.metrics.update(metrics or {})
    if spec.baselines:
        result.metrics.update(compare(result, spec, data, cfg.seed))
    if spec.cv:
        result.metrics.update(cross_validate(spec, cfg, model_cfg, data))
    save_training(result, spec, data, folder, TaskInfo.of(spec, data, stats))
    return result


def compare(result: TrainResult, spec: TaskSpec, data: Dataset, seed: int) -> dict[str, Any]:
    """The model's recall per class on the test rows (a class it never predicts is warned about in one line) and
    the scikit-learn baselines on the same split."""
    import torch

    from edgeclf.tables.stats import DataWarning
    from edgeclf.train.calibration import class_recall, never_predicted
    from edgeclf.train.datasets import baselines
    from edgeclf.train.model import WithProbabilities

    with torch.no_grad():
        proba = WithProbabilities(result.model, spec.n_classes).eval()(torch.from_numpy(data.x_test))[1].numpy()
    recall = class_recall(proba, data.y_test, spec.classes)
    note = never_predicted(recall)
    if note:
        warnings.warn(f"{spec.name}: {note}", DataWarning, stacklevel=3)
    return {"class_recall": recall, "never_predicted": note,
            "baselines": baselines(data.x_train, data.y_train, data.x_test, data.y_test, n_classes=spec.n_classes,
                                   seed=seed)}


def _model_config(spec: TaskSpec, hidden: tuple[int, ...] | None, activation: str | None,
                  fill: tuple[float | None, ...] | None = None,
                  categories: tuple[tuple[str, ...], ...] | None = None) -> ModelConfig:
    return ModelConfig(
        spec.name, len(spec.features), spec.n_classes,
        spec.hidden if hidden is None else tuple(hidden),
        spec.activation if activation is None else activation,
        spec.standardize,
        spec.multilabel,
        fill,
        categories,
    )


def _train_streamed(path: str | Path, label: str, out: Path | str, *, features: Sequence[str] | None, name: str | None,
                    test: Any, cv: int | None, hidden: tuple[int, ...] | None, activation: str | None, progress: bool,
                    impute: str | None = None, **overrides: object) -> TrainResult:
    """train_data for a file read in batches: pass 1 checks and measures it (train/stream.py), each epoch reads it
    again; the test rows (held out by hash within each class, or the given test table) and a training sample stay
    in memory. Text columns of few values are categories and impute fills empty cells, as in memory."""
    from edgeclf.train.stream import scan, train_batches
    from edgeclf.train.tabular import load_table

    seed, folder = _stream_start(path, out, name, cv, overrides)
    s = scan(path, label, features, seed=seed, hold_out=test is None, impute=impute is not None)
    for note in s.file.notes:
        warnings.warn(note, stacklevel=3)
    t = load_table(test, label, reference=s.reference(), impute=impute) if test is not None else None
    s, fill = _impute_streamed(s, t) if impute is not None else (s, None)
    if t is not None:
        data = Dataset(s.x_sample, s.y_sample, t.x, t.y, f"given test table {Path(str(test)).name}")
    else:
        data = Dataset(s.x_sample, s.y_sample, s.x_test, s.y_test, _held_out(len(s.y_test), seed))
    spec = table_spec(folder.name, lambda n, r: (data.x_train, data.y_train),
                      s.classes, s.features, s.rows, _describe(path, label, s.features, s.rows), cv=0, baselines=True)
    source = FileBatches(lambda size, epoch: train_batches(s, size, epoch), s.train_rows,
                         s.stats.standardisation(s.features))  # warns (DataWarning) about a constant feature
    metrics = {"stream": {"rows": s.rows, "train_rows": s.train_rows, "test_rows": len(data.y_test),
                          "train_metrics_rows": len(data.y_train), "shuffle_rows": SHUFFLE_ROWS}}
    cats = tuple(v or () for v in s.categories) if s.categories else None
    return train_spec(spec, out, hidden=hidden, activation=activation, progress=progress, data=data, source=source,
                      stats=s.stats, metrics=metrics, fill=fill, categories=cats, **overrides)  # type: ignore[arg-type]


def _impute_streamed(s: Any, test: Any) -> tuple[Any, tuple[float | None, ...] | None]:
    """_impute for a streamed table (train/stream.imputed): the scan with its statistics and rows in memory
    filled, and the fill."""
    from edgeclf.train.impute import apply_fill, fill_note
    from edgeclf.train.stream import imputed

    test_empty = np.isnan(test.x).sum(axis=0) if test is not None else np.zeros(len(s.features), np.int64)
    filled, fill = imputed(s, test_empty)
    warnings.warn(fill_note(fill, s.empty + test_empty, s.features, s.file.where), stacklevel=4)
    if test is not None and fill is not None:
        apply_fill(test.x, fill)
    return filled, fill


def _held_out(rows: int, seed: int) -> str:
    return (f"streamed; {rows:,} rows held out, stratified: per class the {HOLD_OUT:.0%} with the smallest hash of "
            f"the row index with seed {seed} (at most {TEST_MAX_ROWS:,} in all)")


def cross_validate(spec: TaskSpec, cfg: TrainConfig, model_cfg: ModelConfig, data: Dataset) -> dict[str, Any]:
    """This model's k-fold CV accuracy and the logistic-regression baseline's (same folds, and the same split for
    its test accuracy); the task meets its target when its CV mean >= the baseline's minus CV_MARGIN."""
    from edgeclf.train.datasets import logreg_baseline, stratified_folds

    x, y = np.concatenate([data.x_train, data.x_test]), np.concatenate([data.y_train, data.y_test])
    from edgeclf.tables.stats import DataWarning

    with warnings.catch_warnings():  # a small class's note on the folds came once, when k was checked
        warnings.filterwarnings("ignore", message="cross-validation with k=", category=DataWarning)
        folds = stratified_folds(y.astype(np.int64), spec.cv, cfg.seed)
        accs = [train(spec, cfg, model_cfg, Dataset(x[a], y[a], x[b], y[b])).metrics["test_accuracy"]
                for a, b in folds]
        base = logreg_baseline(data.x_train, data.y_train, data.x_test, data.y_test, x, y, k=spec.cv, seed=cfg.seed)
    mine = {"k": spec.cv, "cv_mean": round(float(np.mean(accs)), 6), "cv_std": round(float(np.std(accs)), 6)}
    base = {k: round(v, 6) if isinstance(v, float) else v for k, v in base.items()}
    met = mine["cv_mean"] >= base["cv_mean"] - CV_MARGIN
    return {"cv": mine, "baseline": base, "target_met": met,
            "target": f"{spec.cv}-fold CV accuracy >= the logistic-regression baseline's - {CV_MARGIN:.0%}"}
