"""A table file too big to hold comfortably, read in record batches: one pass checks and measures it, then each
epoch reads it again. Memory is bounded by the read batch, the shuffle buffer and the capped held-out and sample
rows, whatever the number of rows.

Pass 1 applies the in-memory reader's checks batch by batch (the same one-line errors, rows counted across batches),
collects the classes, and measures every feature of the training rows (count, mean and M2 merged per batch in
float64, Chan et al.; min and max). Which rows are held out is decided by a hash of the row index and the seed
(splitmix64), not by the data: a row whose hash is below HOLD_OUT is a test candidate, and the TEST_MAX_ROWS
candidates with the smallest hashes are the test rows (kept in memory); the others train. The split is therefore
random but not stratified. The SAMPLE_ROWS training rows with the smallest hashes above HOLD_OUT are kept too: the
per-epoch train accuracy, the checkpoint's rows and the pictures use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from edgeclf.runtime.errors import first_line
from edgeclf.train.settings import TEST_SIZE
from edgeclf.train.tabular import (
    MAX_CLASSES,
    MIN_ROWS,
    PARQUET_SUFFIXES,
    Table,
    _check_header,
    _check_names,
    _error,
    _features_matrix,
    _is_frame,
    _label_values,
    _pick_features,
    _Rows,
    check_counts,
    warn_constant,
)

READ_ROWS = 65_536  # rows per Parquet record batch
CSV_BLOCK = 1 << 22  # bytes per CSV block (4 MiB: ~10k-60k rows)
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
            what = "a DataFrame is already in memory" if _is_frame(source) else f"got {type(source).__name__}"
            raise _error(f"streaming reads a CSV or Parquet file in batches: {what}; pass the file's path")
        return False
    path = Path(source)
    if stream is not None or not path.is_file():
        return bool(stream)  # a missing file is named by the reader
    if path.suffix.lower() not in PARQUET_SUFFIXES:
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


# ---------------------------------------------------------------------------------------------- reading


class TableFile:
    """A CSV or Parquet file read as record batches of its label and feature columns, as often as needed."""

    def __init__(self, path: Path, label: str, features: Sequence[str] | None, where: str | None = None) -> None:
        self.path, self.label, self.where = path, label, where or str(path)
        if not path.is_file():
            raise _error(f"{self.where}: no such file" if not path.exists() else f"{self.where}: not a file")
        self.parquet = path.suffix.lower() in PARQUET_SUFFIXES
        schema = self._parquet_schema() if self.parquet else self._csv_schema()
        names = [str(n) for n in schema.names]
        _check_names(names, self.where)
        if label not in names:
            raise _error(f"{self.where}: label column {label!r} not found; columns: {names}")
        import pyarrow as pa

        # an empty Table of the schema (not schema.empty_table(), which imports pandas: 40 MB)
        picked, self.notes = _pick_features(pa.Table.from_batches([], schema=schema), label, features, self.where)
        self.features = tuple(picked)
        self.columns = [label, *picked]
        self.types = self._csv_types(schema)

    def _parquet_schema(self) -> Any:
        try:
            return self._parquet().schema_arrow
        except Exception as e:  # pyarrow raises ArrowException, OSError or ValueError for a file that is not Parquet
            raise self._parquet_error(e) from None

    def _parquet(self) -> Any:
        import pyarrow.parquet as pq

        # without pre-buffering: pyarrow would read column chunks of many row groups ahead (scale/sources.py)
        return pq.ParquetFile(self.path, pre_buffer=False, buffer_size=1 << 20)

    def _parquet_error(self, e: Exception) -> Exception:
        return _error(f"{self.where}: cannot read it as Parquet, the file is corrupt or not Parquet "
                      f"({first_line(e)})")

    def _csv_schema(self) -> Any:
        """The columns and the types pyarrow infers from the first block."""
        try:
            reader = self._open_csv(None, threads=True)
            try:
                schema = reader.schema
            finally:
                reader.close()  # its read-ahead thread: stopped here, not at interpreter exit (exit 134)
        except Exception as e:
            raise self._csv_error(e) from None
        _check_header([str(n) for n in schema.names], self.where)
        return schema

    def _csv_types(self, schema: Any) -> dict[str, Any]:
        """Features as float64; the label as the first block's type (integers as int64, floats as float64), so
        that a later block can neither change it nor be read another way."""
        import pyarrow as pa

        t = schema.field(self.label).type
        label = pa.int64() if pa.types.is_integer(t) else pa.float64() if pa.types.is_floating(t) else t
        return {self.label: label, **{f: pa.float64() for f in self.features}}

    def _open_csv(self, types: dict[str, Any] | None, threads: bool, on_ragged: Any = None) -> Any:
        import pyarrow.csv as pcsv

        convert = pcsv.ConvertOptions(strings_can_be_null=True, column_types=types,
                                      include_columns=list(types) if types else None)
        parse = pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_ragged)
        read = pcsv.ReadOptions(block_size=CSV_BLOCK, use_threads=threads)
        return pcsv.open_csv(self.path, read_options=read, parse_options=parse, convert_options=convert)

    def batches(self) -> Iterator[tuple[int, Any]]:
        """(index of the batch's first row, RecordBatch with the label and feature columns), in file order."""
        start = 0
        it: Any = None
        try:
            while True:
                try:
                    it = it or self._iterate()  # a CSV reader reads its first block on opening
                    batch = next(it)
                except StopIteration:
                    return
                except Exception as e:  # pyarrow's ArrowException, OSError, ValueError
                    raise (self._parquet_error(e) if self.parquet else self._csv_error(e)) from None
                yield start, batch
                start += batch.num_rows
        finally:  # also when the caller stops early (a bad value found in a batch): the CSV reader's read-ahead
            close = getattr(it, "close", None)  # thread stops here, not at interpreter exit (exit 134)
            if close is not None:
                close()

    def _iterate(self) -> Iterator[Any]:
        if self.parquet:
            # one thread: pyarrow's threaded decoding took 20-30 MB more at the peak here, for no time that mattered
            return iter(self._parquet().iter_batches(batch_size=READ_ROWS, columns=self.columns, use_threads=False))
        reader: Iterator[Any] = self._open_csv(self.types, threads=True)  # an iterator with close()
        return reader

    def _csv_error(self, err: Exception) -> Exception:
        """The reader failed somewhere: read again (error path only), serially and with the columns as text, to
        name the row (a row of the wrong length, or a value that is not of its column's type)."""
        import pyarrow as pa

        ragged: list[Any] = []

        def on_ragged(row: Any) -> str:
            ragged.append(row)
            return "error"

        text = {c: pa.string() for c in getattr(self, "columns", [])} or None
        try:
            done = 0
            for batch in self._open_csv(text, threads=False, on_ragged=on_ragged):
                if text:
                    self._check_text(batch, _Rows(offset=done))
                done += batch.num_rows
        except pa.ArrowException:
            if ragged:
                r = ragged[0]  # pyarrow counts the header as row 1
                at = f"row {r.number - 1}" if r.number is not None else "a row"
                return _error(f"{self.where}: {at} has {r.actual_columns} cells where the header has "
                              f"{r.expected_columns}")
        return _error(f"{self.where}: cannot read it as CSV ({first_line(err)})")

    def _check_text(self, batch: Any, rows: _Rows) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        _features_matrix(batch, list(self.features), self.where, rows)  # raises at a value that is not a number
        col, want = batch.column(self.label), self.types[self.label]
        if pa.types.is_string(want):
            return
        try:
            pc.cast(col, want)
        except (pa.ArrowException, ValueError):
            from edgeclf.train.tabular import _first_uncastable, _show

            i = _first_uncastable(col, want)
            kind = "an integer" if pa.types.is_integer(want) else "a number"
            raise _error(
                f"{self.where}: label column {self.label!r} {rows(i)}: value {_show(col[i].as_py())} is not {kind} "
                "like the labels in the file's first rows; give every row a label of one kind"
            ) from None


# ---------------------------------------------------------------------------------------------- pass 1


class _Moments:
    """Count, mean, M2, min and max per column, merged batch by batch in float64 (Chan, Golub, LeVeque)."""

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

    @property
    def std(self) -> np.ndarray:
        return np.asarray(np.sqrt(self.m2 / max(self.n, 1)))  # population std, as StandardScaler


class _Pool:
    """The `cap` rows with the smallest keys seen so far; offer() returns the rows it pushes out."""

    def __init__(self, cap: int, f: int) -> None:
        self.cap = cap
        self.x, self.y, self.key = np.empty((0, f), np.float32), np.empty(0, np.int64), np.empty(0)

    def offer(self, x: np.ndarray, y: np.ndarray, key: np.ndarray) -> np.ndarray:
        xs, ys, keys = np.concatenate([self.x, x]), np.concatenate([self.y, y]), np.concatenate([self.key, key])
        order = np.argsort(keys, kind="stable")
        keep, out = order[: self.cap], order[self.cap:]
        self.x, self.y, self.key = xs[keep], ys[keep], keys[keep]
        return np.asarray(xs[out])


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
    import pyarrow as pa

    rows = _Rows(offset=start)
    col = _label_values(batch, file.label, file.where, rows)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return _features_matrix(batch, list(file.features), file.where, rows), col


@dataclass(frozen=True)
class Scan:
    """What pass 1 found: the classes, the training rows' statistics, and the held-out and sample rows."""

    file: TableFile
    seed: int
    classes: tuple[str, ...]
    values: Any  # pyarrow array of the raw label values in class order
    rows: int
    train_rows: int
    mean: np.ndarray  # (F,) float64, training rows
    std: np.ndarray  # (F,) float64, population
    lo: np.ndarray
    hi: np.ndarray
    test_cut: float  # a row whose hash is <= test_cut is held out (-1.0: none is)
    x_test: np.ndarray  # (T, F) float32
    y_test: np.ndarray  # (T,) int64
    x_sample: np.ndarray  # (S, F) float32, training rows
    y_sample: np.ndarray

    @property
    def features(self) -> tuple[str, ...]:
        return self.file.features

    def reference(self) -> Table:
        """An empty Table with these classes and features: load_table(test, reference=...) checks a test table."""
        f = len(self.features)
        return Table(np.empty((0, f), np.float32), np.empty(0, np.int64), self.classes, self.features, self.file.where)

    def standardisation(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) float32 for the Standardize layer; a constant feature's std becomes 1 (warned)."""
        std = self.std.astype(np.float32)
        constant = (self.hi == self.lo) | (std == 0)
        for j in np.flatnonzero(constant):
            warn_constant(repr(self.features[int(j)]), float(np.float32(self.lo[j])))
        std[constant] = 1.0
        return self.mean.astype(np.float32), std

    def stats(self) -> dict[str, list[float]]:
        """min, max, mean, std per feature as the checkpoint keeps them (shortest float32 repr)."""
        return {k: [float(str(np.float32(v))) for v in a]
                for k, a in (("min", self.lo), ("max", self.hi), ("mean", self.mean), ("std", self.std))}


def scan(path: Path | str, label: str, features: Sequence[str] | None = None, *, seed: int,
         hold_out: bool = True, where: str | None = None) -> Scan:
    """Pass 1 over a CSV or Parquet file. hold_out=False (a test table is given): every row trains."""
    file = TableFile(Path(path), label, features, where)
    f = len(file.features)
    moments, classes = _Moments(f), _Classes(label, file.where)
    test, sample = _Pool(TEST_MAX_ROWS if hold_out else 0, f), _Pool(SAMPLE_ROWS, f)
    share = HOLD_OUT if hold_out else 0.0
    n = 0
    for start, batch in file.batches():
        x, col = read_rows(file, batch, start)
        ids = classes.ids(col, start)  # (B,) first-appearance ids
        key = row_hash(np.arange(start, start + len(x)), seed)  # (B,)
        cand = key < share
        moments.add(test.offer(x[cand], ids[cand], key[cand]))  # rows pushed out of the test pool train
        moments.add(x[~cand])
        sample.offer(x[~cand], ids[~cand], key[~cand])
        n += len(x)
    return _finish(file, seed, n, moments, classes, test, sample)


def _finish(file: TableFile, seed: int, n: int, moments: _Moments, classes: _Classes, test: _Pool,
            sample: _Pool) -> Scan:
    import pyarrow as pa

    if n < MIN_ROWS:
        raise _error(f"{file.where}: {n} data rows: need at least {MIN_ROWS}")
    names, values, remap = classes.sorted()
    ids = np.argsort(remap)  # (K,) class index -> first-appearance id
    check_counts(classes.counts[ids], names, file.label, file.where, lambda c: f"row {int(classes.first[ids[c]]) + 1}")
    if test.cap and not len(test.y):
        raise _error(f"{file.where}: {n} rows: too few to hold out a test share by hashing; train it in memory "
                     "(--no-stream) or give a test table (--test)")
    return Scan(file, seed, names, pa.array(values, type=classes.type), n, moments.n, moments.mean, moments.std, moments.lo,
                moments.hi, float(test.key.max()) if len(test.key) else -1.0, test.x, remap[test.y], sample.x,
                remap[sample.y])


# ---------------------------------------------------------------------------------------------- epochs


def train_batches(s: Scan, batch_size: int, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of (x (B, F) float32, y (B,) int64) training mini-batches: the file read again, held-out rows
    skipped, shuffled within SHUFFLE_ROWS rows (seeded by seed and epoch). batch_size 0: the read batches as they
    come (full-batch training accumulates their gradients)."""
    rng = np.random.default_rng([s.seed, epoch])
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    held = 0
    for x, y in _training_rows(s):
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

    n = 0
    for start, batch in s.file.batches():
        x, col = read_rows(s.file, batch, start)
        idx = pc.index_in(col, value_set=s.values)
        n += len(x)
        if idx.null_count or n > s.rows:
            raise _changed(s)
        train = row_hash(np.arange(start, start + len(x)), s.seed) > s.test_cut  # (B,)
        yield x[train], np.asarray(idx, dtype=np.int64)[train]
    if n != s.rows:
        raise _changed(s)


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
