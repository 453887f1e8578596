"""Parity of an exported file against eager PyTorch, by the one tolerance policy of edgeclf.

float32 outputs of two engines on the same rows:
- probabilities: |a - b| <= PROBA_ATOL (absolute: they live in [0, 1]);
- logits: |a - b| <= LOGITS_ATOL + LOGITS_RTOL * |ref| + ROUNDING_FACTOR * E (np.isclose semantics plus a
  rounding term): a bound in absolute terms alone is wrong for logits, since one float32 step at |z| = 138 is
  already 1.5e-5 and two engines summing in another order differ by a few steps. A relative term alone is wrong
  too where a logit near 0 is the difference of large terms (a ReLU net's hidden activations in the hundreds):
  there each engine is off by eps32 x those terms, not by eps32 x the result. E is eager float32's own worst error
  against the same model run in float64 on the check rows; an export as accurate as eager is within 2E of it;
- labels: equal on every row whose top-two probability margin exceeds MARGIN; multi-label models: each label's
  decision (p >= its threshold) equal wherever |p - threshold| exceeds MARGIN, compared per (row, label).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from edgeclf.runtime.contract import OUTPUT_NAMES

PROBA_ATOL = 1e-5
LOGITS_ATOL = 1e-5
LOGITS_RTOL = 1e-5
MARGIN = 1e-4
ROUNDING_FACTOR = 2.0
POLICY = {"probabilities_atol": PROBA_ATOL, "logits_atol": LOGITS_ATOL, "logits_rtol": LOGITS_RTOL,
          "logits_rounding_factor": ROUNDING_FACTOR, "label_margin": MARGIN}
POLICY_TEXT = (f"probabilities |a-b| <= {PROBA_ATOL:g}; logits |a-b| <= {LOGITS_ATOL:g} + {LOGITS_RTOL:g}*|eager| + "
               f"{ROUNDING_FACTOR:g}*E, E = eager float32's worst error against float64 on the checked rows; labels "
               f"equal on every row whose top-two probability margin exceeds {MARGIN:g}")

Outputs = tuple[np.ndarray, np.ndarray]  # logits (N, 1|C), probabilities (N, C)


@dataclass(frozen=True)
class OutputDiff:
    name: str
    max_abs: float
    max_rel: float
    worst_row: int  # the row closest to (or furthest past) its bound
    excess: float  # max over rows of |a-b| / bound: <= 1 passes
    needed_atol: float  # the absolute term that would have passed (with this output's rtol unchanged)

    @property
    def passed(self) -> bool:
        return self.excess <= 1.0


@dataclass(frozen=True)
class ParityResult:
    """How one file's outputs compare with eager PyTorch; truthy when the policy holds."""

    file: str
    rows: int
    outputs: tuple[OutputDiff, ...]
    label_agreement: float  # over all rows
    label_mismatches: int  # among rows whose margin exceeds MARGIN
    rounding: float = 0.0  # E: eager float32's worst logit error against float64 on these rows

    def output(self, name: str) -> OutputDiff:
        return next(o for o in self.outputs if o.name == name)

    def __bool__(self) -> bool:
        return all(o.passed for o in self.outputs) and self.label_mismatches == 0

    def __str__(self) -> str:
        verdict = "PASS" if self else "FAIL"
        diffs = ", ".join(f"{o.name} max_abs={o.max_abs:.2e} max_rel={o.max_rel:.2e} (worst row {o.worst_row}, "
                          f"{o.excess:.2f}x its bound, passes at atol {o.needed_atol:.1e})" for o in self.outputs)
        return (f"{verdict} {self.file}: {self.rows} rows, {diffs}, labels {self.label_agreement:.2%} agree "
                f"({self.label_mismatches} mismatches above margin {MARGIN:g}); "
                f"eager's own float32 error E={self.rounding:.1e}")

    def summary(self) -> dict[str, Any]:
        """What the manifest keeps: no measured float, so the file is the same whichever CPU measured it."""
        return {"rows": self.rows, "passed": bool(self)}

    def to_dict(self) -> dict[str, Any]:
        """Every measured figure, for `verify --json` and reports."""
        return {"file": self.file, "rows": self.rows, "passed": bool(self), "label_agreement": self.label_agreement,
                "rounding": self.rounding,
                "label_mismatches": self.label_mismatches,
                "outputs": {o.name: {"max_abs": o.max_abs, "max_rel": o.max_rel, "worst_row": o.worst_row,
                                     "excess": o.excess, "needed_atol": o.needed_atol} for o in self.outputs}}


def labels_of(probabilities: np.ndarray) -> np.ndarray:
    labels: np.ndarray = np.asarray(probabilities).argmax(axis=1)
    return labels


def margin_of(probabilities: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row: how far the row is from a tie."""
    top2 = np.sort(np.asarray(probabilities, dtype=np.float64), axis=1)[:, -2:]
    margin: np.ndarray = top2[:, 1] - top2[:, 0]
    return margin


def _diff(name: str, got: np.ndarray, ref: np.ndarray, atol: float, rtol: float) -> OutputDiff:
    """atol: the absolute term (rounding included); needed_atol: the one that would have passed."""
    a, b = got.astype(np.float64), ref.astype(np.float64)
    d = np.abs(a - b)  # (N, K)
    if not d.size:
        return OutputDiff(name, 0.0, 0.0, 0, 0.0, 0.0)
    bound = atol + rtol * np.abs(b)
    ratio = np.where(np.isnan(d), np.inf, d / bound).max(axis=1)  # (N,): a NaN never passes
    worst = int(ratio.argmax())
    rel = d / np.maximum(np.abs(b), np.finfo(np.float32).tiny)
    needed = float(np.nan_to_num(d - rtol * np.abs(b), nan=np.inf).max())
    return OutputDiff(name, float(np.nanmax(d)) if not np.isnan(d).all() else float("nan"), float(np.nanmax(rel)),
                      worst, float(ratio[worst]), max(needed, 0.0))


def decisions(probabilities: np.ndarray, ref: np.ndarray, thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(same, decisive): per row (single-label) or per (row, label) (with thresholds), whether the two decisions
    agree and whether the reference is further than MARGIN from its tie."""
    if not len(thresholds):
        return labels_of(probabilities) == labels_of(ref), margin_of(ref) > MARGIN
    t = np.asarray(thresholds, np.float32)[None, :]  # (1, L)
    same = (probabilities >= t) == (ref >= t)  # (N, L)
    return same.ravel(), (np.abs(ref.astype(np.float64) - t) > MARGIN).ravel()


def compare(file: str, got: Outputs, ref: Outputs, rounding: float = 0.0,
            thresholds: Sequence[float] = ()) -> ParityResult:
    """got vs ref (eager) on the same rows, by the policy above; rounding = E (0: no float64 reference);
    thresholds: a multi-label model's, one per label (label agreement is then over (row, label) cells)."""
    tolerances = {"logits": (LOGITS_ATOL + ROUNDING_FACTOR * rounding, LOGITS_RTOL), "probabilities": (PROBA_ATOL, 0.0)}
    diffs = []
    for name, a, b in zip(OUTPUT_NAMES, got, ref):
        if a.shape != b.shape:
            raise ValueError(f"{file}: output {name} has shape {a.shape}, expected {b.shape}")
        diffs.append(_diff(name, a, b, *tolerances[name]))
    same, decisive = decisions(got[1], ref[1], thresholds)
    n = len(same)
    return ParityResult(file=file, rows=n, outputs=tuple(diffs), label_agreement=float(same.mean()) if n else 1.0,
                        label_mismatches=int((~same & decisive).sum()), rounding=rounding)


def rounding_error(ref32: np.ndarray, exact: np.ndarray) -> float:
    """E: the worst |float32 logit - float64 logit| of eager over the rows."""
    return float(np.abs(ref32.astype(np.float64) - exact).max(initial=0.0))


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
