"""The task registry: one entry per task holds its data, classes, model shape, training recipe and target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from edgeclf.runtime.errors import InputError
from edgeclf.train.settings import FRESH_ROWS, FRESH_SEED, SPLIT, SPLIT_SEED, TEST_SIZE

MakeData = Callable[[int, int], tuple[np.ndarray, np.ndarray]]  # (rows, seed) -> X (N, F), y (N,)


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # (N, F) float32
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    split: str = SPLIT
    # rows held out of training by the caller (a multi-label model's threshold rows): early stopping watches these
    validation: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def x_all(self) -> np.ndarray:
        return np.concatenate([self.x_train, self.x_test])


def split_dataset(x: np.ndarray, y: np.ndarray, seed: int = SPLIT_SEED, stratify: bool = True) -> Dataset:
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(
        x.astype(np.float32), y.astype(np.int64), test_size=TEST_SIZE, random_state=seed,
        stratify=y if stratify else None)
    how = "stratified " if stratify else ""
    return Dataset(x_tr, y_tr, x_te, y_te, f"{how}train_test_split(test_size={TEST_SIZE}, random_state={seed})")


@dataclass(frozen=True)
class Recipe:
    """How the task trains with one optimizer: chosen for test accuracy and calibration on a fresh sample."""

    lr: float
    epochs: int  # with patience: the most epochs
    weight_decay: float = 0.0
    patience: int = 0  # early stopping on validation log loss (best weights restored); 0 = every epoch runs


@dataclass(frozen=True)
class Candidate:
    """One setting the recipe search tries on the validation split: the model's width/depth and AdamW's step."""

    hidden: tuple[int, ...]
    lr: float
    weight_decay: float
    batch_size: int

    def as_dict(self) -> dict[str, object]:
        return {"hidden": list(self.hidden), "lr": self.lr, "weight_decay": self.weight_decay,
                "batch_size": self.batch_size}


@dataclass(frozen=True)
class TaskSpec:
    name: str
    make_data: MakeData
    classes: tuple[str, ...]
    features: tuple[str, ...]
    hidden: tuple[int, ...]
    recipes: Mapping[str, Recipe]  # optimizer -> recipe; the first one is the default
    target_accuracy: float  # the test accuracy the defaults must reach
    activation: str = "relu"
    rows: int = 1000  # what make_data draws for training + test
    standardize: bool = False  # learn the train split's mean/std into the graph's first nodes
    batch_size: int = 0  # 0 = full batch
    description: str = ""
    fresh_targets: Mapping[str, float] = field(default_factory=dict)  # accuracy/log_loss/ece on the fresh sample
    cv: int = 0  # k-fold cross-validation (and the logistic-regression baseline) in every run; 0 = none
    stratify: bool = True  # False: a plain random split (the toy tasks' committed artifacts were made so)
    multilabel: bool = False  # classes are labels; make_data's y is (N, L) 0/1 (train/multilabel.py)
    candidates: tuple[Candidate, ...] = ()  # the recipe search's settings (train/search.py); () = no search
    baselines: bool = False  # per-class recall and scikit-learn baselines on the same split in metrics.json

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def optimizer(self) -> str:
        return next(iter(self.recipes))

    def dataset(self) -> Dataset:
        return split_dataset(*self.make_data(self.rows, SPLIT_SEED), stratify=self.stratify)

    def fresh(self, rows: int = FRESH_ROWS, seed: int = FRESH_SEED) -> tuple[np.ndarray, np.ndarray]:
        """New points from the task's own generator with another seed: the hold-out calibration is measured on."""
        x, y = self.make_data(rows, seed)
        return x.astype(np.float32), y.astype(np.int64)


def _circles(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=n, noise=0.03, random_state=seed)
    return x, y


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four Gaussian clusters; the centres are always those random_state=42 draws, whatever the sample's seed."""
    from sklearn.datasets import make_blobs

    centers = make_blobs(n_samples=4, n_features=2, centers=4, random_state=42, return_centers=True)[2]
    x, y = make_blobs(n_samples=n, n_features=2, centers=centers, cluster_std=1.5, random_state=seed)
    return x, y


def _moons(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=0.07, random_state=seed)
    return x, y


def _spirals(n: int, seed: int, n_classes: int = 3, noise: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """The CS231n spiral: arm j sweeps angles [4j, 4j+4] with Gaussian noise on the angle."""
    rng = np.random.RandomState(seed)
    per = n // n_classes
    xs, ys = [], []
    for j in range(n_classes):
        r = np.linspace(0.0, 1.0, per)
        t = np.linspace(j * 4, (j + 1) * 4, per) + rng.randn(per) * noise
        xs.append(np.c_[r * np.sin(t), r * np.cos(t)])
        ys.append(np.full(per, j))
    return np.concatenate(xs), np.concatenate(ys)


_TOY_FEATURES = ("x1", "x2")
TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        TaskSpec(
            "circles", _circles, ("outer", "inner"), hidden=(10, 10), target_accuracy=0.995,
            recipes={"adam": Recipe(0.02, 400), "sgd": Recipe(0.1, 400)},
            description="make_circles(1000, noise=0.03): inner vs outer ring",
            fresh_targets={"accuracy": 0.995, "log_loss": 0.02, "ece": 0.02}, features=_TOY_FEATURES, stratify=False,
        ),
        TaskSpec(
            "blobs", _blobs, ("blob0", "blob1", "blob2", "blob3"), hidden=(8, 8), target_accuracy=0.995,
            recipes={"adam": Recipe(0.02, 400), "sgd": Recipe(0.1, 400)},
            description="make_blobs(1000, centers=4, cluster_std=1.5): four Gaussian clusters",
            fresh_targets={"accuracy": 0.989, "log_loss": 0.035, "ece": 0.02}, features=_TOY_FEATURES, stratify=False,
        ),
        TaskSpec(
            "moons", _moons, ("upper", "lower"), hidden=(16, 16), target_accuracy=0.995,
            recipes={"adam": Recipe(0.02, 400), "sgd": Recipe(0.1, 400)},
            description="make_moons(1000, noise=0.07): two interleaved half-moons",
            fresh_targets={"accuracy": 0.995, "log_loss": 0.01, "ece": 0.02}, features=_TOY_FEATURES, stratify=False,
        ),
        TaskSpec(
            "spirals", _spirals, ("arm0", "arm1", "arm2"), hidden=(64, 64), target_accuracy=0.98, rows=300,
            # Adam overfits 240 points (fresh log loss grows with epochs); SGD + momentum is calibrated
            recipes={"sgd": Recipe(0.1, 1600), "adam": Recipe(0.01, 600)},
            description="CS231n spiral: 3 arms x 100 points, angle noise 0.2",
            fresh_targets={"accuracy": 0.98, "log_loss": 0.10, "ece": 0.02}, features=_TOY_FEATURES, stratify=False,
        ),
    ]
}


def _builtin(name: str) -> MakeData:
    """scikit-learn's bundled copy of a real dataset (no download); rows and seed do not apply."""

    def make(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        from edgeclf.train.datasets import load_builtin

        t = load_builtin(name)
        return t.x, t.y

    return make


def table_spec(name: str, make: MakeData, classes: tuple[str, ...], features: tuple[str, ...], rows: int,
               description: str, hidden: tuple[int, ...] = (32,), cv: int = 5, weight_decay: float = 0.5,
               **kw: object) -> TaskSpec:
    """A task on a table: standardised inputs, AdamW with decoupled decay (it improves hold-out log loss on these
    small tables), full batch up to 10,000 training rows and mini-batches of 512 above, with fewer epochs."""
    big = rows > 10_000
    recipe = Recipe(0.01, 10, weight_decay) if big else Recipe(0.01, 200, weight_decay)
    options: dict[str, object] = dict(recipes={"adam": recipe, "sgd": Recipe(0.05, recipe.epochs * 2)},
                                      target_accuracy=0.0, rows=rows, standardize=True,
                                      batch_size=512 if big else 0, description=description, cv=0 if big else cv)
    options.update(kw)
    return TaskSpec(name, make, classes, features, hidden, **options)  # type: ignore[arg-type]


# The default for a user's table: early stopping on a validation split, and a search by validation log loss over
# two mini-batch settings and the strongly regularised full-batch one of table_spec. The two-layer setting decays
# strongly (AdamW weight decay 1: each step shrinks the weights by lr x 1, a strong pull to small weights):
# with it instead of decay 1e-3 the search's test accuracy was as high or higher on all eight tables of
# docs/benchmarks.md ("Tables", scripts/eval_tables.py) and its log loss lower on seven (wine: 0.032 vs 0.030).
CANDIDATES = (Candidate((128,), 1e-3, 1e-4, 64), Candidate((128, 128), 1e-3, 1.0, 128), Candidate((32,), 1e-2, 0.5, 0))
MAX_EPOCHS, PATIENCE = 300, 20
BIG_BATCH_ROWS = 20_000  # above this many rows, mini-batches 4x the candidates' (fewer, larger steps per epoch)


def user_table_spec(name: str, make: MakeData, classes: tuple[str, ...], features: tuple[str, ...], rows: int,
                    description: str, cv: int, multilabel: bool = False) -> TaskSpec:
    """A user's table held in memory: the default recipe above (a streamed file keeps table_spec's). multilabel:
    classes are label columns; the search selects by validation binary cross-entropy (train/search.py)."""
    scale = 4 if rows > BIG_BATCH_ROWS else 1
    cands = tuple(Candidate(c.hidden, c.lr, c.weight_decay, c.batch_size * scale) for c in CANDIDATES)
    first = cands[0]
    return table_spec(name, make, classes, features, rows, description, first.hidden, cv,
                      recipes={"adam": Recipe(first.lr, MAX_EPOCHS, first.weight_decay, PATIENCE),
                               "sgd": Recipe(0.05, MAX_EPOCHS, patience=PATIENCE)},
                      batch_size=first.batch_size, candidates=cands, baselines=not multilabel, multilabel=multilabel)


def _builtin_spec(name: str, hidden: tuple[int, ...], description: str, weight_decay: float = 0.5) -> TaskSpec:
    from edgeclf.train.datasets import load_builtin

    t = load_builtin(name)
    return table_spec(name, _builtin(name), t.classes, t.features, len(t.y), description, hidden,
                      weight_decay=weight_decay)


def _machine_faults_spec() -> TaskSpec:
    from edgeclf.train.datasets import MACHINE_FEATURES, MACHINE_LABELS, machine_faults

    return table_spec("machine_faults", lambda n, seed: machine_faults(n, DATA_SEED), MACHINE_LABELS,
                      MACHINE_FEATURES, 10_000, "a milling machine's fault codes (multi-label), drawn by the AI4I 2020 "
                      "predictive-maintenance simulation's rules: 10,000 rows, 6 readings, 4 faults, "
                      "heat_dissipation rare (~1.5%)", hidden=(64, 64), cv=0, multilabel=True, weight_decay=0.01)


def builtin_tables() -> dict[str, TaskSpec]:
    """The real datasets as tasks (built on first use: reading them needs scikit-learn), and the multi-label
    machine_faults."""
    return {t.name: t for t in [
        _machine_faults_spec(),
        _builtin_spec("iris", (32,), "Fisher's iris (scikit-learn's copy): 150 flowers, 4 measurements, 3 species"),
        _builtin_spec("wine", (32,), "UCI wine recognition (scikit-learn's copy): 178 wines, 13 chemical measures",
                      weight_decay=0.01),  # 5-fold CV 98.3% (the baseline's) against 97.8% at 0.5
        _builtin_spec("breast_cancer", (32,), "Wisconsin diagnostic breast cancer (scikit-learn's copy): 569 "
                                              "tumours, 30 cell-nucleus features"),
        _builtin_spec("digits", (64, 64), "UCI handwritten digits (scikit-learn's copy): 1,797 8x8 images as "
                                          "64 pixel intensities"),
    ]}


TABLE_TASKS = ("iris", "wine", "breast_cancer", "digits", "machine_faults")
DATA_SEED = 0  # a generated table task draws the same rows whatever the training seed
TASK_NAMES = (*TASKS, *TABLE_TASKS)


def get_task(name: str) -> TaskSpec:
    if name in TABLE_TASKS:
        return builtin_tables()[name]
    try:
        return TASKS[name]
    except KeyError:
        raise InputError(f"unknown task {name!r}: expected one of {', '.join(TASK_NAMES)}") from None
