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
    """FeatureStats of rows that arrive in batches: count, mean and M2 merged in float64 (Chan, Golub, LeVeque).
    NaN (an empty cell to be imputed) is no value: each feature counts its own values."""

    def __init__(self, f: int) -> None:
        self.n = 0  # rows
        self.count = np.zeros(f)  # (F,) values (not NaN) per feature
        self.mean, self.m2 = np.zeros(f), np.zeros(f)
        self.lo, self.hi = np.full(f, np.inf), np.full(f, -np.inf)

    def add(self, x32: np.ndarray) -> None:
        if not len(x32):
            return
        x = x32.astype(np.float64)  # (B, F)
        self.n += len(x)
        nan = np.isnan(x)
        if not nan.any():
            mb = x.mean(axis=0)
            self._merge(len(x), mb, ((x - mb) ** 2).sum(axis=0), x.min(axis=0), x.max(axis=0))
            return
        nb = (~nan).sum(axis=0)  # (F,)
        with np.errstate(invalid="ignore", divide="ignore"):
            mb = np.where(nan, 0.0, x).sum(axis=0) / nb  # NaN where a feature has no value in the batch
            m2b = np.where(nan, 0.0, (x - mb) ** 2).sum(axis=0)
        self._merge(nb, mb, m2b, np.fmin.reduce(x, axis=0), np.fmax.reduce(x, axis=0))

    def add_value(self, j: int, value: float, k: int) -> None:
        """k more rows of feature j holding value (an imputed feature's fill in its empty cells)."""
        nb, mb = np.zeros(len(self.mean)), np.zeros(len(self.mean))
        nb[j], mb[j] = k, value
        lo, hi = np.full(len(self.mean), np.nan), np.full(len(self.mean), np.nan)
        lo[j] = hi[j] = value
        self._merge(nb, mb, np.zeros(len(self.mean)), lo, hi)

    def _merge(self, nb: Any, mb: np.ndarray, m2b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        n = self.count + nb
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = mb - self.mean
            mean = self.mean + delta * (nb / n)
            m2 = self.m2 + m2b + delta**2 * (self.count * nb / n)
        some = np.asarray(nb) > 0
        self.mean, self.m2, self.count = np.where(some, mean, self.mean), np.where(some, m2, self.m2), n
        self.lo, self.hi = np.fmin(self.lo, lo), np.fmax(self.hi, hi)

    def select(self, columns: Sequence[int]) -> Moments:
        """These features' moments only (a copy)."""
        out = Moments(len(columns))
        out.n = self.n
        for k in ("count", "mean", "m2", "lo", "hi"):
            setattr(out, k, getattr(self, k)[list(columns)].copy())
        return out

    def stats(self) -> FeatureStats:
        return FeatureStats(self.n, self.lo, self.hi, self.mean, np.asarray(np.sqrt(self.m2 / np.maximum(self.count, 1))))


class Medians:
    """Exact medians of float32 features whose values arrive in batches, in bounded memory (three counts of 65,536
    per feature, whatever the rows): the first pass over the values counts their top 16 bits (as ordered keys),
    the second, over the same values again, the low 16 bits inside the buckets that hold the middle ranks. The
    median of an even count is the mean of the two middle values in float64, as numpy's. NaN is no value."""

    def __init__(self, f: int) -> None:
        self.top = np.zeros((f, 1 << 16), np.int64)
        self.low: np.ndarray | None = None  # (F, 2, 65536) in the second pass
        self.where = np.zeros((f, 2), np.int64)  # per feature and middle rank: the top bucket holding it
        self.rank = np.zeros((f, 2), np.int64)  # and its rank inside that bucket

    def add(self, x: np.ndarray) -> None:
        """x (B, F) float32: the values of this pass's batch."""
        for j in range(x.shape[1]):
            col = x[:, j]
            keys = _keys(col[~np.isnan(col)])
            if self.low is None:
                self.top[j] += np.bincount(keys >> 16, minlength=1 << 16)
                continue
            for r in range(2):
                inside = keys[(keys >> 16) == self.where[j, r]]
                self.low[j, r] += np.bincount(inside & 0xFFFF, minlength=1 << 16)

    def next_pass(self) -> np.ndarray:
        """After the first pass: starts the second; returns the count of values per feature (F,)."""
        n = np.asarray(self.top.sum(axis=1), np.int64)
        for j in range(len(n)):
            cum = np.cumsum(self.top[j])
            for r, rank in enumerate(((n[j] - 1) // 2, n[j] // 2)):
                b = int(np.searchsorted(cum, rank, side="right"))
                self.where[j, r] = b
                self.rank[j, r] = rank - (cum[b - 1] if b else 0)
        self.low = np.zeros((len(n), 2, 1 << 16), np.int64)
        return n

    def medians(self) -> np.ndarray:
        """(F,) float64, after the second pass."""
        assert self.low is not None
        out = np.empty(len(self.where))
        for j in range(len(out)):
            v = [_value((int(self.where[j, r]) << 16)
                        | int(np.searchsorted(np.cumsum(self.low[j, r]), self.rank[j, r], side="right")))
                 for r in range(2)]
            out[j] = (v[0] + v[1]) / 2
        return out


def _keys(x: np.ndarray) -> np.ndarray:
    """float32 values as uint32 keys in the same order (negative values flipped, positive ones shifted up)."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    return np.asarray(np.where(bits >> np.uint32(31), ~bits, bits | np.uint32(0x80000000)), np.int64)


def _value(key: int) -> float:
    bits = key ^ 0x80000000 if key >> 31 else ~key & 0xFFFFFFFF
    return float(np.array([bits], np.uint32).view(np.float32)[0])


def schema_of(stats: FeatureStats, features: Sequence[str]) -> list[dict[str, Any]]:
    """Per feature: name, dtype, and min, max, mean and std as float32 values, JSON-safe."""

    def f32(v: Any) -> float:
        return float(np.float32(v))  # an exactly float32-representable Python float: JSON round-trips it

    return [{"name": str(name), "dtype": "float32", "min": f32(stats.lo[j]), "max": f32(stats.hi[j]),
             "mean": f32(stats.mean[j]), "std": f32(stats.std[j])} for j, name in enumerate(features)]
