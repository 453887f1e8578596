"""What both local scoring paths share, free of pyarrow: the report, file positions in messages, the output columns,
and the numpy half of scoring a batch (training-range count, NaN/inf check, probabilities, winning class)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgeclf.runtime import Classifier
from edgeclf.runtime.errors import InputError

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
        oor = "" if self.out_of_range is None else f"; {self.out_of_range:,} row(s) outside the training range"
        return (f"scored {self.rows:,} rows from {self.parts} part(s) in {self.seconds:.2f} s "
                f"({self.rows_per_s / 1e6:.2f} M rows/s) -> {self.output or 'stdout'}{oor}")


def where(path: str, kind: str, row: int) -> str:
    """A row's position as its file names it: lines for text files (header on line 1 in CSV), else the row."""
    if kind == "csv":
        return f"{path} line {row + 2:,}"
    if kind == "jsonl":
        return f"{path} line {row + 1:,}"
    return f"{path} row {row:,} (0-based)"


def first_line(e: BaseException | str) -> str:
    """An error's first line, at most 300 characters: messages stay one line."""
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def empty_feature(path: str, kind: str, row: int, feature: str) -> InputError:
    return InputError(f"{where(path, kind, row)}: feature {feature!r} is empty: expected a number")


class Model:
    """A Classifier and the output it feeds: class names, probability column names (checked against --keep)."""

    def __init__(self, clf: Classifier, proba: bool, keep: Sequence[str]) -> None:
        self.clf, self.features = clf, clf.features
        self.classes = [str(c) for c in clf.classes_]
        self.proba_names = [f"proba_{c}" for c in self.classes] if proba else []
        clash = [k for k in keep if k in (LABEL, *self.proba_names)]
        if clash:
            raise InputError(f"--keep column {clash[0]!r} clashes with an output column: rename it in the input")
        low, high = clf.manifest.training_range()
        self._low, self._high = np.array(low, np.float32), np.array(high, np.float32)  # (F,) each

    def score(self, x: np.ndarray, path: str, kind: str, start: int) -> tuple[np.ndarray, np.ndarray, int]:
        """x (B, F) float32 of rows start.. of the file -> probabilities (B, C), winning class (B,) int32, and how
        many rows lie outside the training range. NaN or inf stops with the file position."""
        # one pass finds the rows off the training range; NaN and inf are among them, so only those are checked
        outside = ~((x >= self._low) & (x <= self._high)).all(axis=1)  # (B,)
        rows = np.flatnonzero(outside)
        bad = rows[~np.isfinite(x[rows]).all(axis=1)] if len(rows) else rows
        if len(bad):
            col = self.features[int(np.flatnonzero(~np.isfinite(x[bad[0]]))[0])]
            raise InputError(f"{where(path, kind, start + int(bad[0]))}: NaN or inf (or a value beyond float32) in "
                             f"column {col!r}: expected finite numbers")
        p = self.clf.predict_proba(x, allow_nonfinite=True)  # (B, C); rows were checked above with file positions
        return p, p.argmax(axis=1).astype(np.int32), len(rows)
