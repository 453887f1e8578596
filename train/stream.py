"""A table file too big to hold comfortably, read in record batches: one pass checks and measures it, then each
epoch reads it again. Memory is bounded by the read batch, the shuffle buffer and the capped held-out and sample
rows, whatever the number of rows.

Pass 1 applies the in-memory reader's checks batch by batch (the same one-line errors, rows counted across batches),
collects the classes, and measures every feature of the training rows (count, mean and M2 merged per batch in
float64, Chan et al.; min and max). Which rows are held out is decided by a hash of the row index and the seed
(splitmix64) within each class: the held-out rows of a class are its rows with the smallest hashes, as many as
its share allows: ceil(HOLD_OUT x its rows), and at most its part of TEST_MAX_ROWS (so the split is stratified and
the held-out rows kept in memory are at most TEST_MAX_ROWS + one per class). The SAMPLE_ROWS training rows with
the smallest hashes are kept too: the per-epoch train accuracy, the checkpoint's rows and the pictures use them.

Text columns (in the schema, or a CSV's first block) are measured in pass 1 in bounded memory (tables/textscan.py)
and become what the in-memory reader makes of them: a category (the sorted vocabulary, its statistics from the
counts of each value), numbers, or a column left out. With impute, empty cells are NaN; `imputed` then finds each
filled feature's exact training median in two more reads (tables/stats.Medians).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import ceil
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from edgeclf.tables.categories import MAX_CATEGORIES
from edgeclf.tables.columns import (
    MAX_CLASSES,
    RowNames,
    check_counts,
    features_matrix,
    label_values,
    left_out_notes,
)
from edgeclf.tables.kinds import is_parquet
from edgeclf.tables.messages import one_line as _error
from edgeclf.tables.read import TableFile, is_frame
from edgeclf.tables.stats import FeatureStats, Medians, Moments
from edgeclf.tables.textscan import TextScan
from edgeclf.train.settings import TEST_SIZE
from edgeclf.train.tabular import Table, check_row_count

SHUFFLE_ROWS = 65_536  # training rows shuffled together before they are cut into mini-batches
HOLD_OUT = TEST_SIZE  # the share of rows that are test candidates
TEST_MAX_ROWS = 20_000  # held-out rows kept in memory: test accuracy and calibration
SAMPLE_ROWS = 20_000  # training rows kept in memory: per-epoch train accuracy, checkpoint, pictures
STREAM_CELLS = 4_000_000  # by default a Parquet file of more cells (rows x columns) than this streams
STREAM_CSV_BYTES = 64 << 20  # and a CSV file larger than this


def should_stream(source: Any, stream: bool | None) -> bool:
    """Whether train_data reads `source` in batches: as asked, else by size (small tables never do)."""
    if not isinstance(source, (str, Path)):
        if stream:
            what = "a DataFrame is already in memory" if is_frame(source) else f"got {type(source).__name__}"
            raise _error(f"streaming reads a CSV or Parquet file in batches: {what}; pass the file's path")
        return False
    path = Path(source)
    if stream is not None or not path.is_file():
        return bool(stream)  # a missing file is named by the reader
    if not is_parquet(path):
        return path.stat().st_size > STREAM_CSV_BYTES
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception:  # a corrupt file: the in-memory reader names the problem
        return False
    return bool(meta.num_rows * meta.num_columns > STREAM_CELLS)


def row_hash(rows: np.ndarray, seed: int) -> np.ndarray:
    """(N,) float64 in [0, 1): splitmix64 of each row index mixed with the seed, the same on every machine."""
    z = rows.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)  # uint64 arithmetic wraps: that is the hash
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.asarray((z >> np.uint64(11)).astype(np.float64) / 2.0**53)


# ---------------------------------------------------------------------------------------------- pass 1


class _Pool:
    """The `cap` rows with the smallest keys seen so far; offer() returns the rows it pushes out (x, y, key)."""

    def __init__(self, cap: int, f: int) -> None:
        self.cap = cap
        self.x, self.y, self.key = np.empty((0, f), np.float32), np.empty(0, np.int64), np.empty(0)

    def offer(self, x: np.ndarray, y: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xs, ys, keys = np.concatenate([self.x, x]), np.concatenate([self.y, y]), np.concatenate([self.key, key])
        order = np.argsort(keys, kind="stable")
        keep, out = order[: self.cap], order[self.cap:]
        self.x, self.y, self.key = xs[keep], ys[keep], keys[keep]
        return xs[out], ys[out], keys[out]


class _HeldOut:
    """The held-out rows, one _Pool per class. As rows come, each class's cap follows its share of the rows seen so
    far; a row pushed out trains, and the pool never again takes a key above one it pushed out (its floor), so in
    the end a class's held-out rows are exactly its rows whose key is <= the largest it kept (its cut)."""

    def __init__(self, f: int, on: bool, share: float | None = None, max_rows: int | None = None) -> None:
        """share, max_rows: of the rows held out (default HOLD_OUT, TEST_MAX_ROWS, read when the scan starts)."""
        self.f, self.on = f, on
        self.share = HOLD_OUT if share is None else share
        self.max_rows = TEST_MAX_ROWS if max_rows is None else max_rows
        self.pools: list[_Pool] = []
        self.floor: list[float] = []

    def offer(self, x: np.ndarray, ids: np.ndarray, key: np.ndarray, counts: np.ndarray,
              n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Take this batch's rows (ids: first-appearance class ids; counts, n: rows so far); returns the rows that
        train: those refused and those pushed out."""
        if not self.on:
            return x, ids, key
        while len(self.pools) < len(counts):
            self.pools.append(_Pool(0, self.f))
            self.floor.append(np.inf)
        order = np.argsort(ids, kind="stable")  # (B,) the batch grouped by class
        bounds = np.searchsorted(ids[order], np.arange(len(counts) + 1))
        out = [(x[:0], ids[:0], key[:0])]
        for c, pool in enumerate(self.pools):
            rows = order[bounds[c]:bounds[c + 1]]
            taken = key[rows] < self.floor[c]
            out.append((x[rows[~taken]], ids[rows[~taken]], key[rows[~taken]]))
            pool.cap = min(ceil(self.share * counts[c]), ceil(self.max_rows * counts[c] / n))
            if taken.any() or len(pool.y) > pool.cap:
                pushed = pool.offer(x[rows[taken]], ids[rows[taken]], key[rows[taken]])
                self.floor[c] = min(self.floor[c], float(pushed[2].min(initial=np.inf)))
                out.append(pushed)
        return tuple(np.concatenate([o[i] for o in out]) for i in range(3))  # type: ignore[return-value]

    def rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, first-appearance ids, cut (K,)) of the held-out rows, grouped in class order (ids: class index ->
        first-appearance id), each class's in hash order; a class with none held out has cut -1."""
        pools = [self.pools[i] for i in ids] if self.on else []
        x = np.concatenate([np.empty((0, self.f), np.float32), *(p.x for p in pools)])
        y = np.concatenate([np.empty(0, np.int64), *(p.y for p in pools)])
        cut = np.array([float(p.key.max()) if len(p.key) else -1.0 for p in pools] if pools else [-1.0] * len(ids))
        return x, y, cut


class _Classes:
    """Label values in order of first appearance, with their counts and first rows; ids() maps a batch to them."""

    def __init__(self, label: str, where: str) -> None:
        self.label, self.where = label, where
        self.values: list[Any] = []
        self.counts, self.first = np.zeros(0, np.int64), np.zeros(0, np.int64)
        self._set: Any = None
        self.type: Any = None

    def ids(self, col: Any, start: int) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        idx = pc.index_in(col, value_set=self._set) if self.values else pa.nulls(len(col), pa.int32())
        if idx.null_count:
            for v in pc.unique(col.filter(pc.is_null(idx))).to_pylist():  # first-appearance order
                self._add(v, start + int(pc.index(col, v).as_py()), col.type)
            idx = pc.index_in(col, value_set=self._set)
        ids = np.asarray(idx, dtype=np.int64)  # (B,)
        self.counts += np.bincount(ids, minlength=len(self.values))
        return ids

    def _add(self, value: Any, row: int, typ: Any) -> None:
        import pyarrow as pa

        if len(self.values) == MAX_CLASSES:
            raise _error(
                f"{self.where}: label column {self.label!r} has more than {MAX_CLASSES} distinct values (the next at "
                f"row {row + 1}): it is probably a regression target, not classes"
            )
        self.values.append(value)
        self.counts, self.first = np.append(self.counts, 0), np.append(self.first, row)
        self._set, self.type = pa.array(self.values, type=typ), typ

    def sorted(self) -> tuple[tuple[str, ...], list[Any], np.ndarray]:
        """(classes as strings, the raw values in class order, remap (K,): first-appearance id -> class index)."""
        order = sorted(range(len(self.values)), key=lambda i: self.values[i])  # numbers numerically, text by code point
        remap = np.empty(len(order), np.int64)
        remap[order] = np.arange(len(order))
        return tuple(str(self.values[i]) for i in order), [self.values[i] for i in order], remap


def read_rows(file: TableFile, batch: Any, start: int) -> tuple[np.ndarray, Any]:
    """(x (B, F) float32, the checked label column) of one batch, with the in-memory reader's checks."""
    rows = RowNames(offset=start)
    return features_matrix(batch, list(file.features), file.where, rows, file.empty_ok, file.vocabs), \
        _label(file, batch, rows)


def _label(file: TableFile, batch: Any, rows: RowNames) -> Any:
    import pyarrow as pa

    col = label_values(batch, file.label, file.where, rows)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _first_read(file: TableFile, batch: Any, start: int, texts: list[TextScan]) -> tuple[np.ndarray, Any]:
    """read_rows before the text columns are decided: x (B, F + T) holds every feature (a text one as numbers,
    NaN once a cell is not one), then each text column's first-appearance ids (tables/textscan.py)."""
    rows = RowNames(offset=start)
    f = len(file.features)
    x = np.empty((batch.num_rows, f + len(texts)), np.float32)  # (B, F + T)
    numbers = [j for j, name in enumerate(file.features) if name not in file.text]
    x[:, numbers] = features_matrix(batch, [file.features[j] for j in numbers], file.where, rows, file.empty_ok)
    for t, text in enumerate(texts):
        x[:, f + t], x[:, file.features.index(text.name)] = text.read(batch, rows)
    return x, _label(file, batch, rows)


@dataclass(frozen=True)
class Scan:
    """What pass 1 found: the classes, the training rows' statistics, and the held-out and sample rows."""

    file: TableFile
    seed: int
    classes: tuple[str, ...]
    values: Any  # pyarrow array of the raw label values in class order
    rows: int
    test_cut: np.ndarray  # (K,) per class: a row of class k whose hash is <= test_cut[k] is held out (-1.0: none is)
    x_test: np.ndarray  # (T, F) float32
    y_test: np.ndarray  # (T,) int64
    x_sample: np.ndarray  # (S, F) float32, training rows
    y_sample: np.ndarray
    moments: Moments  # of the training rows; an imputed feature's fill is added to them
    empty: np.ndarray  # (F,) empty cells per feature in every row (NaN: only with impute)

    @property
    def features(self) -> tuple[str, ...]:
        return self.file.features

    @property
    def stats(self) -> FeatureStats:
        """The training rows' feature statistics, from their moments."""
        return self.moments.stats()

    @property
    def categories(self) -> tuple[tuple[str, ...] | None, ...]:
        """Per feature: its vocabulary (a category) or None; () when there is none, as Table.categories."""
        return self.file.vocabs if any(v is not None for v in self.file.vocabs) else ()

    def reference(self) -> Table:
        """An empty Table with these classes, features and categories: load_table(test, reference=...) checks a test
        table and codes its categories the same way."""
        f = len(self.features)
        return Table(np.empty((0, f), np.float32), np.empty(0, np.int64), self.classes, self.features, self.file.where,
                     categories=self.categories)

    @property
    def train_rows(self) -> int:
        return self.stats.n


def scan(path: Path | str, label: str, features: Sequence[str] | None = None, *, seed: int,
         hold_out: bool = True, where: str | None = None, impute: bool = False) -> Scan:
    """Pass 1 over a CSV or Parquet file. hold_out=False (a test table is given): every row trains. impute: empty
    feature cells are NaN (filled by `imputed`) instead of an error."""
    file = TableFile(Path(path), label, features, where)
    file.empty_ok = impute
    texts = [TextScan(name, file.where, impute) for name in file.text]
    f = len(file.features) + len(texts)
    moments, classes = Moments(f), _Classes(label, file.where)
    test, sample = _HeldOut(f, hold_out), _Pool(SAMPLE_ROWS, f)
    n, empty = 0, np.zeros(f, np.int64)
    for start, batch in file.batches():
        x, col = _first_read(file, batch, start, texts)
        ids = classes.ids(col, start)  # (B,) first-appearance ids
        key = row_hash(np.arange(start, start + len(x)), seed)  # (B,)
        n += len(x)
        empty += np.isnan(x).sum(axis=0)
        x_tr, y_tr, k_tr = test.offer(x, ids, key, classes.counts, n)  # the rows that train
        moments.add(x_tr)
        for t, text in enumerate(texts):
            text.count(x_tr[:, len(file.features) + t])
        sample.offer(x_tr, y_tr, k_tr)
    return _finish(file, seed, n, _Pass(moments, empty, texts), classes, test, sample)


@dataclass(frozen=True)
class _Pass:
    """What pass 1 measured per column of its wide rows (the features, then the text columns' ids)."""

    moments: Moments
    empty: np.ndarray  # (F + T,) empty cells (NaN) in every row
    texts: list[TextScan]


def _finish(file: TableFile, seed: int, n: int, first: _Pass, classes: _Classes, test: _HeldOut,
            sample: _Pool) -> Scan:
    import pyarrow as pa

    check_row_count(n, file.where)
    names, values, remap = classes.sorted()
    ids = np.argsort(remap)  # (K,) class index -> first-appearance id
    check_counts(classes.counts[ids], names, file.label, file.where, lambda c: f"row {int(classes.first[ids[c]]) + 1}")
    x_test, y_test, cut = test.rows(ids)
    kept = _decide(file, first.texts)
    moments = kept.moments(first.moments)
    return Scan(kept.file, seed, names, pa.array(values, type=classes.type), n, cut,
                kept.rows(x_test), remap[y_test], kept.rows(sample.x), remap[sample.y], moments,
                first.empty[kept.columns])


@dataclass(frozen=True)
class _Kept:
    """The features pass 1 keeps: where each lies in the wide rows, and a category's first-appearance -> index map."""

    file: TableFile  # decided: these features, categories read as text
    columns: list[int]  # (F,) column of the wide rows
    remaps: dict[int, np.ndarray]  # feature -> (K,) first-appearance id -> vocabulary index
    texts: dict[int, TextScan]

    def rows(self, wide: np.ndarray) -> np.ndarray:
        x = wide[:, self.columns]  # (N, F)
        for j, remap in self.remaps.items():
            x[:, j] = remap[x[:, j].astype(np.int64)]
        return x

    def moments(self, wide: Moments) -> Moments:
        """The kept features' moments; a category's from its counts of each value, in vocabulary order."""
        m = wide.select(self.columns)
        for j, remap in self.remaps.items():
            m.lo[j], m.hi[j], m.mean[j], m.m2[j] = self.texts[j].moments(remap)
        return m


def _decide(file: TableFile, texts: list[TextScan]) -> _Kept:
    """Each text column becomes what the in-memory reader would make of it (tables/categories.values_kind): a
    category; with named features, numbers (every cell is one) or that reading's error; by default, left out with
    a note."""
    f = len(file.features)
    scans = {t.name: (f + i, t) for i, t in enumerate(texts)}
    names: list[str] = []
    columns: list[int] = []
    vocabs: list[tuple[str, ...] | None] = []
    remaps: dict[int, np.ndarray] = {}
    by_feature: dict[int, TextScan] = {}
    many: list[str] = []
    other: list[str] = []
    for j, name in enumerate(file.features):
        col, text = scans.get(name, (j, None))
        kind = "number" if text is None else text.kind()
        if text is not None and kind == "category":
            vocab, remaps[len(names)] = text.vocabulary()
            by_feature[len(names)] = text
        elif text is not None and not file.explicit:
            (many if kind == "many" else other).append(name)
            continue
        elif text is not None and kind == "many":
            raise text.too_many()
        elif text is not None and text.number_error is not None:
            raise text.number_error
        else:
            vocab = None  # a number (a named text column whose every cell reads as one, too)
        names.append(name)
        columns.append(col if vocab is not None else j)
        vocabs.append(vocab)
    if not names:
        raise _error(f"{file.where}: no numeric or category column besides the label {file.label!r} (text columns "
                     f"left out: {', '.join(many + other)})")
    out = file.decided(names, vocabs)
    out.notes = [*file.notes, *left_out_notes(file.where, [f"{n!r} (more than {MAX_CATEGORIES} values)" for n in many],
                                              [f"{n!r} (string)" for n in other])]
    return _Kept(out, columns, remaps, by_feature)


# ---------------------------------------------------------------------------------------------- imputing


def imputed(s: Scan, test_empty: np.ndarray | None = None) -> tuple[Scan, tuple[float | None, ...] | None]:
    """--impute median for a streamed table: the features with an empty cell (in the file, or the given test
    table's test_empty (F,) counts) take the exact median of their training values, found in two more passes over
    the file in bounded memory (tables/stats.Medians); the statistics then count the filled cells as the fill, and
    the rows in memory are filled, as in memory (train/impute.py)."""
    from edgeclf.train.impute import all_empty, apply_fill

    empty = s.empty + (test_empty if test_empty is not None else 0)
    filled = np.flatnonzero(empty > 0)
    if not filled.size:
        return s, None
    medians = Medians(len(filled))
    for _ in range(2):
        for x, _y in _training_rows(s):
            medians.add(x[:, filled])
        if medians.low is None:
            count = medians.next_pass()
            if (count == 0).any():
                raise all_empty(s.file.where, s.features[int(filled[int(np.flatnonzero(count == 0)[0])])])
    fill: list[float | None] = [None] * len(s.features)
    moments = s.moments.select(list(range(len(s.features))))
    for j, m in zip(filled.tolist(), medians.medians()):
        fill[j] = v = float(np.float32(m))
        moments.add_value(j, v, int(moments.n - moments.count[j]))  # the training rows' empty cells
    for x in (s.x_test, s.x_sample):
        apply_fill(x, tuple(fill))
    return replace(s, moments=moments), tuple(fill)


# ---------------------------------------------------------------------------------------------- epochs


def train_batches(s: Scan, batch_size: int, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of (x (B, F) float32, y (B,) int64) training mini-batches: the file read again, held-out rows
    skipped, shuffled within SHUFFLE_ROWS rows (seeded by seed and epoch). batch_size 0: the read batches as they
    come (full-batch training accumulates their gradients)."""
    return shuffled_batches(_training_rows(s), s.seed, batch_size, epoch)


def shuffled_batches(rows: Iterator[tuple[np.ndarray, np.ndarray]], seed: int, batch_size: int,
                     epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """rows' (x, y) batches as train_batches yields them: shuffled within SHUFFLE_ROWS rows, seeded by seed and
    epoch, cut into mini-batches of batch_size (0: as they come). y: (B,) class indices or (B, L) labels."""
    rng = np.random.default_rng([seed, epoch])
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    held = 0
    for x, y in rows:
        if not batch_size:
            yield x, y
            continue
        xs.append(x)
        ys.append(y)
        held += len(y)
        if held >= SHUFFLE_ROWS:
            bx, by = _shuffled(xs, ys, rng)
            cut = len(by) - len(by) % batch_size
            yield from _cut(bx[:cut], by[:cut], batch_size)
            xs, ys, held = [bx[cut:]], [by[cut:]], len(by) - cut
    if held:
        yield from _cut(*_shuffled(xs, ys, rng), batch_size)


def _training_rows(s: Scan) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    import pyarrow.compute as pc

    def read(batch: Any, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, col = read_rows(s.file, batch, start)
        idx = pc.index_in(col, value_set=s.values)
        if idx.null_count:  # a label the first read did not see
            raise _changed(s)
        y = np.asarray(idx, dtype=np.int64)  # (B,) class indices
        return x, y, s.test_cut[y]

    return held_in(s.file, s.rows, s.seed, read, lambda: _changed(s))


def held_in(file: TableFile, rows: int, seed: int, read: Callable[[Any, int], tuple[np.ndarray, np.ndarray, np.ndarray]],
            changed: Callable[[], Exception]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The rows a streamed split trains on, read again from the file, batch by batch: read(batch, start) gives the
    batch's x, y and each row's hold-out cut (its stratum's); a row is kept when its index's hash is above its cut,
    as the first read held rows out. A file whose row count moved since that read raises changed()."""
    n = 0
    for start, batch in file.batches():
        x, y, cut = read(batch, start)
        n += len(x)
        if n > rows:
            raise changed()
        keep = row_hash(np.arange(start, start + len(x)), seed) > cut  # (B,)
        yield x[keep], y[keep]
    if n != rows:
        raise changed()


def _changed(s: Scan) -> Exception:
    return _error(f"{s.file.where}: the file changed while training (its rows or labels differ from the first "
                  "read): train again on a file nobody writes to")


def _shuffled(xs: list[np.ndarray], ys: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = rng.permutation(len(y))
    return x[order], y[order]


def _cut(x: np.ndarray, y: np.ndarray, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i in range(0, len(y), size):
        yield x[i:i + size], y[i:i + size]
