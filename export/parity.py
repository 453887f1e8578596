"""Parity of an exported file against eager PyTorch, by the one tolerance policy (GUIDE §3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

ATOL = 1e-5  # float32 logits/probabilities: max |a - b|
MARGIN = 1e-4  # labels must agree on every row whose decision margin exceeds this

Outputs = tuple[np.ndarray, np.ndarray]  # logits (N, 1|C), probabilities (N, C)


@dataclass(frozen=True)
class OutputDiff:
    name: str
    max_abs: float
    max_rel: float

    @property
    def passed(self) -> bool:
        return self.max_abs <= ATOL


@dataclass(frozen=True)
class ParityResult:
    """How one file's outputs compare with eager PyTorch; truthy when the policy holds."""

    file: str
    rows: int
    outputs: tuple[OutputDiff, ...]
    label_agreement: float  # over all rows
    label_mismatches: int  # among rows whose margin exceeds MARGIN
    atol: float = ATOL

    @property
    def needed_atol(self) -> float:
        """The tolerance that would have passed."""
        return max(o.max_abs for o in self.outputs)

    def __bool__(self) -> bool:
        return all(o.passed for o in self.outputs) and self.label_mismatches == 0

    def __str__(self) -> str:
        verdict = "PASS" if self else "FAIL"
        diffs = ", ".join(f"{o.name} max_abs={o.max_abs:.2e} max_rel={o.max_rel:.2e}" for o in self.outputs)
        return (
            f"{verdict} {self.file}: {self.rows} rows, {diffs}, labels {self.label_agreement:.2%} agree "
            f"({self.label_mismatches} mismatches above margin {MARGIN:g}); atol {self.atol:g}, "
            f"would pass at {self.needed_atol:.1e}"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outputs"] = {o.name: {"max_abs": o.max_abs, "max_rel": o.max_rel} for o in self.outputs}
        d["passed"] = bool(self)
        d["needed_atol"] = self.needed_atol
        del d["file"]
        return d


def labels_of(probabilities: np.ndarray) -> np.ndarray:
    return np.asarray(probabilities).argmax(axis=1)


def margin_of(probabilities: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row: how far the row is from a tie."""
    top2 = np.sort(np.asarray(probabilities, dtype=np.float64), axis=1)[:, -2:]
    return np.asarray(top2[:, 1] - top2[:, 0])


def compare(file: str, got: Outputs, ref: Outputs) -> ParityResult:
    diffs = []
    for name, a, b in zip(("logits", "probabilities"), got, ref):
        if a.shape != b.shape:
            raise ValueError(f"{file}: output {name} has shape {a.shape}, expected {b.shape}")
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        rel = d / np.maximum(np.abs(b.astype(np.float64)), np.finfo(np.float32).tiny)
        diffs.append(OutputDiff(name, float(d.max(initial=0.0)), float(rel.max(initial=0.0))))
    same = labels_of(got[1]) == labels_of(ref[1])
    decisive = margin_of(ref[1]) > MARGIN
    n = len(same)
    return ParityResult(
        file=file, rows=n, outputs=tuple(diffs),
        label_agreement=float(same.mean()) if n else 1.0,
        label_mismatches=int((~same & decisive).sum()),
    )


def run_chunked(fn: Callable[[np.ndarray], Outputs], x: np.ndarray, batch: int) -> Outputs:
    """Run a fixed-batch model over any number of rows: chunks of `batch`, the last one zero-padded."""
    n = len(x)
    parts: list[Outputs] = []
    for start in range(0, n, batch):
        chunk = x[start:start + batch]
        k = len(chunk)
        if k < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - k, x.shape[1]), x.dtype)])
        logits, probs = fn(np.ascontiguousarray(chunk))
        parts.append((logits[:k], probs[:k]))
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
