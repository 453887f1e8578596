"""A multi-label table file read in batches, as train/stream.py reads a one-label file: bounded memory whatever the
number of rows, the file read again every epoch.

Pass 0 reads the label columns (each checked as the in-memory reader checks them: 0/1, true/false or yes/no; a
constant label refused) and counts each label's positives. Pass 1 checks and measures the features and holds rows
out by the hash of their index (stream.row_hash) within strata: a row's stratum is its rarest present label by the
positive rates of pass 0, or "none" (multilabel.rarest_label), so the rarest label's positives are held out in
their share exactly and the others follow from the rows they share. Held out: the test rows (stream.HOLD_OUT of
each stratum, unless a test table is given) and then the validation rows where the thresholds are chosen
(multilabel.VALIDATION_SHARE of each stratum's remaining rows); each at most stream.TEST_MAX_ROWS in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from edgeclf.tables.columns import RowNames, check_not_label, features_matrix, indicator_values, pick_features
from edgeclf.tables.messages import one_line as _error
from edgeclf.tables.read import TableFile
from edgeclf.tables.stats import FeatureStats, Moments
from edgeclf.train.multilabel import VALIDATION_SHARE, check_positives, rarest_label
from edgeclf.train.stream import SAMPLE_ROWS, _HeldOut, _Pool, held_in, row_hash, shuffled_batches
from edgeclf.train.tabular import check_row_count


class LabelsFile(TableFile):
    """A TableFile whose batches carry the label columns (read as text from a CSV: 0/1, true/false, yes/no)."""

    def __init__(self, path: Path, labels: Sequence[str], features: Sequence[str] | None) -> None:
        import pyarrow as pa

        check_not_label(features or (), labels, str(path))  # before TableFile checks labels[0] alone
        super().__init__(path, labels[0], features)
        schema = self._parquet_schema() if self.parquet else self._csv_schema()
        names = [str(n) for n in schema.names]
        missing = next((n for n in labels if n not in names), None)
        if missing is not None:
            raise _error(f"{self.where}: label column {missing!r} not found; columns: {names}")
        self.labels = tuple(labels)
        # picked again with every label column: the default would take the others as features, or note them
        picked, self.notes = pick_features(pa.Table.from_batches([], schema=schema), labels, features, self.where,
                                           categories=False)
        self.features = tuple(picked)
        self.columns = [*labels, *self.features]
        self.types = {**{n: pa.string() for n in labels}, **{f: pa.float64() for f in self.features}}

    def _check_text(self, batch: Any, rows: RowNames) -> None:
        read_label_rows(self, batch, rows.offset)

    def label_rows(self, batch: Any, start: int) -> np.ndarray:
        """(B, L) float32 0/1 of one batch, a value of another kind refused naming its row."""
        rows = RowNames(offset=start)
        return np.stack([indicator_values(batch, n, self.where, rows) for n in self.labels], axis=1)


def read_label_rows(file: LabelsFile, batch: Any, start: int) -> tuple[np.ndarray, np.ndarray]:
    """(x (B, F) float32, y (B, L) float32) of one batch, with the in-memory reader's checks."""
    y = file.label_rows(batch, start)
    return features_matrix(batch, list(file.features), file.where, RowNames(offset=start), impute_hint=False), y


@dataclass(frozen=True)
class LabelScan:
    """What passes 0 and 1 found: the label rates, the training rows' statistics, the held-out and sample rows."""

    file: LabelsFile
    seed: int
    rows: int
    rates: np.ndarray  # (L,) each label's positive share over the whole file: the strata
    stats: FeatureStats  # of the training rows
    cuts: np.ndarray  # (L + 1,) per stratum: a row whose hash is <= its cut is held out (test or validation)
    test: tuple[np.ndarray, np.ndarray]  # (x (T, F), y (T, L)), empty with a given test table
    validation: tuple[np.ndarray, np.ndarray]
    sample: tuple[np.ndarray, np.ndarray]  # training rows kept in memory: per-epoch metrics, baselines, checkpoint

    @property
    def features(self) -> tuple[str, ...]:
        return self.file.features

    @property
    def train_rows(self) -> int:
        return self.stats.n


def _rates(file: LabelsFile) -> tuple[int, np.ndarray]:
    """Pass 0: (rows, each label's positive share); a constant label is refused (multilabel.check_varied)."""
    n, pos = 0, np.zeros(len(file.labels))
    for start, batch in file.batches():
        y = file.label_rows(batch, start)  # (B, L)
        n, pos = n + len(y), pos + y.sum(axis=0)
    check_row_count(n, file.where)
    check_positives(pos, n, file.labels, file.where)
    return n, pos / n


def scan_labels(path: Path | str, labels: Sequence[str], features: Sequence[str] | None = None, *, seed: int,
                hold_out: bool = True) -> LabelScan:
    """Passes 0 and 1 over a CSV or Parquet file. hold_out=False (a test table is given): no test rows are held
    out; the validation rows still are."""
    file = LabelsFile(Path(path), labels, features)
    rows, rates = _rates(file)
    f, n_labels = len(file.features), len(labels)
    # the held-out pools keep (x | y) side by side: their rows are stratum ids, their labels travel as columns
    test = _HeldOut(f + n_labels, hold_out)
    validation = _HeldOut(f + n_labels, True, share=VALIDATION_SHARE)
    sample, moments = _Pool(SAMPLE_ROWS, f + n_labels), Moments(f)
    seen, left = np.zeros(n_labels + 1, np.int64), np.zeros(n_labels + 1, np.int64)
    n = 0
    for start, batch in file.batches():
        x, y = read_label_rows(file, batch, start)
        strata = rarest_label(y, rates)  # (B,)
        key = row_hash(np.arange(start, start + len(x)), seed)  # (B,)
        n += len(x)
        seen += np.bincount(strata, minlength=n_labels + 1)
        xy, s_tr, k_tr = test.offer(np.hstack([x, y]), strata, key, seen, n)  # the rows test leaves
        left = seen - np.array([len(p.y) for p in test.pools] or [0] * len(seen))  # rows not held for test
        xy, s_tr, k_tr = validation.offer(xy, s_tr, key=k_tr, counts=left, n=int(left.sum()))
        moments.add(xy[:, :f])
        sample.offer(xy, s_tr, k_tr)
    if n != rows:
        raise changed(file)
    return _finish(file, seed, rows, rates, moments, test, validation, sample)


def _finish(file: LabelsFile, seed: int, rows: int, rates: np.ndarray, moments: Moments, test: _HeldOut,
            validation: _HeldOut, sample: _Pool) -> LabelScan:
    f, strata = len(file.features), np.arange(len(rates) + 1)
    x_test, _, test_cut = test.rows(strata)
    x_val, _, val_cut = validation.rows(strata)
    return LabelScan(file, seed, rows, rates, moments.stats(), np.maximum(test_cut, val_cut),
                     (x_test[:, :f], x_test[:, f:]), (x_val[:, :f], x_val[:, f:]), (sample.x[:, :f], sample.x[:, f:]))


def label_batches(s: LabelScan, batch_size: int, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of (x (B, F), y (B, L)) float32 training mini-batches: the file read again, held-out rows
    skipped, shuffled as stream.train_batches shuffles."""
    return shuffled_batches(_training_rows(s), s.seed, batch_size, epoch)


def _training_rows(s: LabelScan) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    def read(batch: Any, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, y = read_label_rows(s.file, batch, start)
        return x, y, s.cuts[rarest_label(y, s.rates)]

    return held_in(s.file, s.rows, s.seed, read, lambda: changed(s.file))


def changed(file: LabelsFile) -> Exception:
    return _error(f"{file.where}: the file changed while training (its rows differ from the first read): train "
                  "again on a file nobody writes to")
