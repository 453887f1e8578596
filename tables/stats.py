"""Per-feature statistics of training rows (count, min, max, mean, population std), one type for a table in memory,
a file read in batches and a user's check data: the checkpoint keeps them, the manifest records them, the
Standardize layer is fitted from them. numpy only."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

NAMES = ("min", "max", "mean", "std")


class DataWarning(UserWarning):
    """Something in the data that training survives but the user should hear about (a constant feature)."""


@dataclass(frozen=True)
class FeatureStats:
    n: int
    lo: np.ndarray  # (F,) float64
    hi: np.ndarray  # (F,) float64
    mean: np.ndarray  # (F,) float64
    std: np.ndarray  # (F,) float64, population (as StandardScaler)

    @classmethod
    def of(cls, x: np.ndarray) -> FeatureStats:
        """The statistics of rows in memory, (N, F), computed in float64."""
        x64 = np.asarray(x, dtype=np.float64)  # (N, F)
        return cls(len(x64), x64.min(axis=0), x64.max(axis=0), x64.mean(axis=0), x64.std(axis=0))

    def as_dict(self) -> dict[str, list[float]]:
        """min, max, mean, std per feature as the checkpoint and the manifest keep them (shortest float32 repr)."""
        return {k: [float(str(np.float32(v))) for v in a] for k, a in zip(NAMES, (self.lo, self.hi, self.mean, self.std))}

    def per_feature(self) -> list[tuple[float, float, float, float]]:
        """(min, max, mean, std) of each feature, as as_dict() rounds them."""
        d = self.as_dict()
        return list(zip(*(d[k] for k in NAMES)))

    def standardisation(self, features: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) float32 for the Standardize layer; a constant feature's std 0 becomes 1 (warned)."""
        std = self.std.astype(np.float32)
        constant = (self.hi == self.lo) | (std == 0)
        for j in np.flatnonzero(constant):
            name = repr(features[int(j)]) if features is not None else f"#{j}"
            warn_constant(name, float(np.float32(self.lo[j])))
        std[constant] = 1.0
        return self.mean.astype(np.float32), std


def warn_constant(name: str, value: float) -> None:
    warnings.warn(
        f"feature {name} is constant in the training split (value {value!r}): it carries no information; "
        "its std is taken as 1",
        DataWarning,
        stacklevel=4,
    )


class Moments:
    """FeatureStats of rows that arrive in batches: count, mean and M2 merged in float64 (Chan, Golub, LeVeque)."""

    def __init__(self, f: int) -> None:
        self.n = 0
        self.mean, self.m2 = np.zeros(f), np.zeros(f)
        self.lo, self.hi = np.full(f, np.inf), np.full(f, -np.inf)

    def add(self, x32: np.ndarray) -> None:
        if not len(x32):
            return
        x = x32.astype(np.float64)  # (B, F)
        nb, mb = len(x), x.mean(axis=0)
        m2b = ((x - mb) ** 2).sum(axis=0)
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + delta**2 * (self.n * nb / n)
        self.n = n
        self.lo, self.hi = np.minimum(self.lo, x.min(axis=0)), np.maximum(self.hi, x.max(axis=0))

    def stats(self) -> FeatureStats:
        return FeatureStats(self.n, self.lo, self.hi, self.mean, np.asarray(np.sqrt(self.m2 / max(self.n, 1))))


def schema_of(stats: FeatureStats, features: Sequence[str]) -> list[dict[str, Any]]:
    """Per feature: name, dtype, and min, max, mean and std as float32 values, JSON-safe."""

    def f32(v: Any) -> float:
        return float(np.float32(v))  # an exactly float32-representable Python float: JSON round-trips it

    return [{"name": str(name), "dtype": "float32", "min": f32(stats.lo[j]), "max": f32(stats.hi[j]),
             "mean": f32(stats.mean[j]), "std": f32(stats.std[j])} for j, name in enumerate(features)]
