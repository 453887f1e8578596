"""A text column of a file read in record batches (streamed training's first pass), measured in bounded memory so
that it can become what the in-memory reader would make of it: a category, numbers, or a column left out.

Per column it keeps at most MAX_CATEGORIES + 1 distinct values (in order of first appearance; one more means
"too many for a category", and nothing more is kept), how many training rows hold each, the first empty cell,
and the column read as numbers until a cell does not read as one (that cell's error is kept). The in-memory
rules (tables/categories.values_kind) then decide on the kept values; the vocabulary is their sorted order, so
the indices are the ones the in-memory path gives the same values."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeclf.runtime.errors import InputError, UnseenCategory
from edgeclf.tables.categories import MAX_CATEGORIES, too_many, values_kind
from edgeclf.tables.columns import RowNames, features_matrix


class TextScan:
    """One text column over the first pass: read() gives, per batch, its values' first-appearance ids (NaN for an
    empty cell or once there are too many values) and its values as numbers (NaN once one is not a number)."""

    def __init__(self, name: str, where: str, empty_ok: bool) -> None:
        self.name, self.where, self.empty_ok = name, where, empty_ok
        self.values: list[str] = []
        self.more = False  # more than MAX_CATEGORIES distinct values: not a category, none kept beyond these
        self.counts = np.zeros(0, np.int64)  # training rows per kept value
        self.empty: str | None = None  # the first empty cell's row, as RowNames shows it
        self.number_error: InputError | None = None  # the first cell that does not read as a number

    def read(self, batch: Any, rows: RowNames) -> tuple[np.ndarray, np.ndarray]:
        """(ids (B,) float32, numbers (B,) float32) of this batch's cells."""
        import pyarrow as pa
        import pyarrow.compute as pc

        col = batch.column(self.name)
        if pa.types.is_dictionary(col.type):
            col = pc.cast(col, col.type.value_type)
        if col.null_count and self.empty is None:
            self.empty = rows(int(np.flatnonzero(np.asarray(pc.is_null(col)))[0]))
        ids = self._ids(col)
        return ids, self._numbers(batch, rows)

    def _ids(self, col: Any) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self.more:
            for v in pc.unique(col.drop_null()).to_pylist():  # first-appearance order within the batch
                if v not in self.values:
                    if len(self.values) == MAX_CATEGORIES + 1:
                        self.more = True
                        break
                    self.values.append(v)
        if self.more:
            return np.full(len(col), np.nan, np.float32)
        idx = pc.index_in(col, value_set=pa.array(self.values, type=pa.string()))
        return np.asarray(pc.fill_null(pc.cast(idx, pa.float32()), float("nan")), np.float32)

    def _numbers(self, batch: Any, rows: RowNames) -> np.ndarray:
        if self.number_error is None:
            try:
                return features_matrix(batch, [self.name], self.where, rows, self.empty_ok)[:, 0]  # a feature's checks
            except InputError as e:
                self.number_error = e
        return np.full(batch.num_rows, np.nan, np.float32)

    def count(self, ids: np.ndarray) -> None:
        """Add the training rows' ids (NaN: an empty cell, or too many values)."""
        if self.more:
            return
        known = ids[~np.isnan(ids)].astype(np.int64)
        self.counts = np.bincount(known, minlength=len(self.values)) + np.pad(
            self.counts, (0, len(self.values) - len(self.counts)))

    def kind(self) -> str:
        """numbers, single, category or many, by the in-memory rules on the kept values."""
        return values_kind(self.values, self.more)

    def vocabulary(self) -> tuple[tuple[str, ...], np.ndarray]:
        """(the sorted values, remap (K,): first-appearance id -> index in them). An empty cell is an error here,
        as in memory (a category has no empty value)."""
        vocab = tuple(sorted(self.values))
        if self.empty is not None:
            raise UnseenCategory(f"{self.where}: {self.empty}", self.name, None, vocab)
        remap = np.array([vocab.index(v) for v in self.values], np.float32)
        return vocab, remap

    def too_many(self) -> Exception:
        return too_many(self.where, self.name, f"more than {MAX_CATEGORIES}")

    def moments(self, remap: np.ndarray) -> tuple[float, float, float, float]:
        """(min, max, mean, M2) of the training rows' indices, from the counts (tables/stats.Moments' terms)."""
        n = int(self.counts.sum())
        if not n:
            return np.inf, -np.inf, 0.0, 0.0
        idx = remap.astype(np.float64)
        mean = float((idx * self.counts).sum() / n)
        present = self.counts > 0
        return float(idx[present].min()), float(idx[present].max()), mean, float((self.counts * (idx - mean) ** 2).sum())
