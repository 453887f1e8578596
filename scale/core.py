"""What both local scoring paths share, free of pyarrow: the report, the output columns, and the numpy half of
scoring a batch (training-range count, probabilities with a NaN/inf found at its file position, winning class)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgeclf.runtime import Classifier
from edgeclf.runtime.classifier import column_decisions
from edgeclf.runtime.errors import InputError
from edgeclf.tables.messages import nonfinite, position

LABEL = "label"


@dataclass(frozen=True)
class ScoreReport:
    rows: int
    out_of_range: int | None  # rows with a feature outside the training range (manifest features' min/max);
    # None where it was not counted (the dask engine)
    seconds: float
    parts: int  # input files (score_files) or partitions (score_dask)
    output: str | None  # None: stdout

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        outside = "" if self.out_of_range is None else f"; {self.out_of_range:,} row(s) outside the training range"
        # a rate of a few rows says nothing (and rounds to "0.00 M rows/s"): rows and seconds always, a rate for big runs
        rate = f", {self.rows_per_s / 1e6:.2f} M rows/s" if self.rows >= 100_000 else ""
        return (f"scored {self.rows:,} rows from {self.parts} part(s) in {self.seconds:.2f} s{rate} "
                f"-> {self.output or 'stdout'}{outside}")


def output_columns(classes: Sequence[str], multilabel: bool, proba: bool) -> tuple[list[str], list[str]]:
    """(decision columns, probability columns): `label` (the class), or one 0/1 column named after each label of a
    multi-label model; with proba, `proba_<class>` / `proba_<label>`."""
    return ([str(c) for c in classes] if multilabel else [LABEL]), ([f"proba_{c}" for c in classes] if proba else [])


def checked_outputs(classes: Sequence[str], multilabel: bool, proba: bool,
                    keep: Sequence[str]) -> tuple[list[str], list[str]]:
    """output_columns, refused (one line) where a kept column or a label would take an output column's name: every
    engine (local, Dask) writes each column once and never overwrites a kept one."""
    decisions, probas = output_columns(classes, multilabel, proba)
    outputs = (*decisions, *probas)
    clash = [k for k in keep if k in outputs]
    if clash:
        raise InputError(f"--keep column {clash[0]!r} clashes with an output column: rename it in the input")
    dup = next((c for c in outputs if outputs.count(c) > 1), None)
    if dup is not None:
        raise InputError(f"output column {dup!r} appears twice (a label named like a probability column): "
                         f"re-export the model with other label names")
    return decisions, probas


class Scorer:
    """Scores batches of rows with a Classifier for an output: class names, probability column names (checked
    against --keep), the training range."""

    def __init__(self, clf: Classifier, proba: bool, keep: Sequence[str]) -> None:
        self.clf, self.features = clf, clf.features
        self.classes = [str(c) for c in clf.classes_]
        self.multilabel = clf.multilabel
        self.decision_names, self.proba_names = checked_outputs(self.classes, self.multilabel, proba, keep)
        self._low, self._high = (r.astype(np.float32) for r in clf.training_range)  # (F,) each, as x is

    def score(self, x: np.ndarray, path: str, kind: str, start: int) -> tuple[np.ndarray, np.ndarray, int]:
        """x (B, F) float32 of rows start.. of the file -> probabilities (B, C), the decision: winning class (B,)
        int32, or for a multi-label model (B, L) int8 0/1 (p >= threshold), and how many rows lie outside the
        training range. NaN or inf stops with the file position."""
        inside = self._inside(x)  # (B,)
        try:
            p = self.clf.predict_proba(x)  # (B, C)
        except InputError as e:
            if e.row is None:
                raise
            raise nonfinite(position(path, kind, start + e.row), e.column) from None
        decided = column_decisions(p, self.clf.decision_thresholds)
        return p, decided, len(inside) - int(np.count_nonzero(inside))

    def _inside(self, x: np.ndarray) -> np.ndarray:
        """(B,) rows inside the training range, as Classifier.out_of_range counts them: a NaN (an empty cell the model
        fills with a training median; elsewhere predict_proba refuses it) is not outside. Column by column: numpy's
        reductions along a short axis 1 cost 10x more than these passes over (B,) columns."""
        inside = np.ones(len(x), bool)
        for j in range(x.shape[1]):
            c = x[:, j]  # (B,) strided view
            inside &= ~((c < self._low[j]) | (c > self._high[j]))
        return inside
