"""The task registry: one entry per task holds its data, classes, model shape, defaults and target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgeclf.runtime.errors import InputError

SPLIT_SEED = 42
TEST_SIZE = 0.2


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # (N, F) float32
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def x_all(self) -> np.ndarray:
        return np.concatenate([self.x_train, self.x_test])


@dataclass(frozen=True)
class TaskSpec:
    name: str
    make_data: Callable[[], tuple[np.ndarray, np.ndarray]]  # -> X (N, F), y (N,)
    classes: tuple[str, ...]
    features: tuple[str, ...]
    hidden: tuple[int, ...]
    activation: str
    epochs: int
    lr: float
    optimizer: str
    target_accuracy: float  # the test accuracy the defaults must reach
    batch_size: int = 0  # 0 = full batch
    description: str = ""

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def kind(self) -> str:
        return "binary" if self.n_classes == 2 else "multiclass"

    def dataset(self) -> Dataset:
        from sklearn.model_selection import train_test_split

        x, y = self.make_data()
        x_tr, x_te, y_tr, y_te = train_test_split(
            x.astype(np.float32), y.astype(np.int64), test_size=TEST_SIZE, random_state=SPLIT_SEED
        )
        return Dataset(x_tr, y_tr, x_te, y_te)


def _circles() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_circles

    return make_circles(n_samples=1000, noise=0.03, random_state=42)


def _blobs() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=1000, n_features=2, centers=4, cluster_std=1.5, random_state=42)
    return x, y


def _moons() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    return make_moons(n_samples=1000, noise=0.07, random_state=42)


def _spirals(points_per_class: int = 100, n_classes: int = 3, noise: float = 0.2):
    """The CS231n spiral: arm j sweeps angles [4j, 4j+4] with Gaussian noise on the angle."""
    rng = np.random.RandomState(42)
    xs, ys = [], []
    for j in range(n_classes):
        r = np.linspace(0.0, 1.0, points_per_class)
        t = np.linspace(j * 4, (j + 1) * 4, points_per_class) + rng.randn(points_per_class) * noise
        xs.append(np.c_[r * np.sin(t), r * np.cos(t)])
        ys.append(np.full(points_per_class, j))
    return np.concatenate(xs), np.concatenate(ys)


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        TaskSpec(
            "circles", _circles, ("outer", "inner"), ("x1", "x2"), (10, 10), "relu",
            epochs=400, lr=0.02, optimizer="adam", target_accuracy=0.995,
            description="make_circles(1000, noise=0.03): inner vs outer ring",
        ),
        TaskSpec(
            "blobs", _blobs, ("blob0", "blob1", "blob2", "blob3"), ("x1", "x2"), (8, 8), "relu",
            epochs=400, lr=0.02, optimizer="adam", target_accuracy=0.995,
            description="make_blobs(1000, centers=4, cluster_std=1.5): four Gaussian clusters",
        ),
        TaskSpec(
            "moons", _moons, ("upper", "lower"), ("x1", "x2"), (16, 16), "relu",
            epochs=400, lr=0.02, optimizer="adam", target_accuracy=0.995,
            description="make_moons(1000, noise=0.07): two interleaved half-moons",
        ),
        TaskSpec(
            "spirals", _spirals, ("arm0", "arm1", "arm2"), ("x1", "x2"), (64, 64), "relu",
            epochs=600, lr=0.01, optimizer="adam", target_accuracy=0.98,
            description="CS231n spiral: 3 arms x 100 points, angle noise 0.2",
        ),
    ]
}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise InputError(
            f"unknown task {name!r}: expected one of {', '.join(TASKS)}"
        ) from None
