"""Input files for scoring: CSV, Parquet, JSONL and .npy read in bounded batches with pyarrow (numpy's memory map
for .npy), '-' for CSV on stdin. Each source checks its columns before any row is scored and names its file, and the
line where it can, in every error. A new input file type: its entry in edgeclf.tables.kinds, its reader here."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson

from edgeclf.runtime.errors import InputError, first_line
from edgeclf.tables.kinds import STDIN, check_text, check_text_file
from edgeclf.tables.messages import check_columns, empty_file, expected_header, not_a_number, position
from edgeclf.tables.read import csv_reader, first_not_number, locate_csv, parquet_file


@dataclass(frozen=True)
class Source:
    """One input file (or stdin) and what it holds: `total` is rows when known, else bytes (`by_bytes`)."""

    path: str
    kind: str
    schema: pa.Schema
    total: int | None
    by_bytes: bool


def csv_options(features: Sequence[str], keep: Sequence[str], block: int, threads: bool = True,
                text: bool = False, categories: Sequence[str] = ()) -> dict[str, Any]:
    """Only the wanted columns are converted; features straight to float32, kept columns as their text (an id
    like 007 passes through unchanged and never trips type inference half-way through a file). A kept feature is
    read once, as a number."""
    types = {k: pa.string() for k in keep}
    types.update({f: pa.string() if text or f in categories else pa.float32() for f in features})
    return {
        "read_options": pcsv.ReadOptions(block_size=block, use_threads=threads),
        "convert_options": pcsv.ConvertOptions(column_types=types, include_columns=wanted_columns(features, keep)),
    }


def wanted_columns(features: Sequence[str], keep: Sequence[str]) -> list[str]:
    """The columns a text reader converts, in its order: kept ones, then features, each once."""
    return list(dict.fromkeys([*keep, *features]))


def open_stream(path: str, kind: str, features: Sequence[str], keep: Sequence[str], batch_rows: int,
                stdin: IO[bytes] | None = None, categories: Sequence[str] = ()) -> tuple[Any, Any]:
    """(reader, handle): a pyarrow reader for a csv/jsonl/parquet source or the .npy memory map, and the file
    handle to close (its tell() is how far a text reader got, for the progress bar). '-' reads stdin (or the
    stream given in its place). categories: the features read as text (a model's category columns)."""
    block = min(max(1 << 20, batch_rows * 24), 1 << 26)  # ~24 bytes a CSV row: a block near batch_rows rows
    handle = None
    try:
        if kind == "parquet":
            return parquet_file(path), None
        if kind == "npy":
            return np.load(path, mmap_mode="r", allow_pickle=False), None
        if kind == "csv":
            _check_csv_head(path, stdin)
        handle = (stdin or sys.stdin.buffer) if path == STDIN else pa.OSFile(path)
        if kind == "csv":
            return pcsv.open_csv(handle, **csv_options(features, keep, block, categories=categories)), handle
        schema = pa.schema([(f, pa.string() if f in categories else pa.float32()) for f in features])
        return pjson.open_json(handle, read_options=pjson.ReadOptions(block_size=block),
                               parse_options=pjson.ParseOptions(explicit_schema=schema)), handle
    except KeyError:  # pyarrow's ArrowKeyError: a wanted column is not in the CSV's header
        _close(handle, path)
        raise _header_error(path, features, keep, stdin) from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ValueError) as e:
        _close(handle, path)
        if isinstance(e, InputError):
            raise
        # the first block is read on opening: a bad row there is found by line like one further down
        found = _csv_problem(path, features, keep) if kind == "csv" and path != STDIN else None
        if found is not None:
            raise found from None
        if kind == "csv" and "Empty CSV" in str(e):
            raise empty_file(path, features, keep) from None
        what = {"npy": ".npy array", "parquet": "Parquet file", "jsonl": "JSON Lines file", "csv": "CSV file"}[kind]
        raise InputError(f"{path} is not a readable {what}: {first_line(e)}", file=path) from None


def _close(handle: Any, path: str) -> None:
    if handle is not None and path != STDIN:
        handle.close()


def close_stream(reader: Any, handle: Any, path: str) -> None:
    """Close a source's reader and its file (stdin's stays open). pyarrow's streaming CSV reader reads ahead on a
    thread: it is stopped here, not at interpreter exit (which can abort the process)."""
    close = getattr(reader, "close", None)
    if close is not None:
        close()
    _close(handle, path)


def _check_csv_head(path: str, stdin: IO[bytes] | None) -> None:
    if path != STDIN:
        check_text_file(path)
    elif stdin is not None and hasattr(stdin, "peek"):
        check_text(stdin.peek(1024), path)


def _header_error(path: str, features: Sequence[str], keep: Sequence[str], stdin: IO[bytes] | None) -> InputError:
    """A wanted column is missing: read the header alone to say which, in edgeclf's words."""
    names: list[str] = []
    try:
        if path != STDIN:
            with contextlib.closing(csv_reader(path, threads=False, block=1 << 20)) as reader:
                names = [str(n) for n in reader.schema.names]
        elif stdin is not None and hasattr(stdin, "peek"):  # what pyarrow read is gone; a buffered stream shows it
            names = next(csv.reader(io.StringIO(stdin.peek(1 << 16).decode("utf-8-sig", "replace"))), [])
    except (pa.ArrowException, OSError, StopIteration):
        pass
    try:
        check_columns(path, names, features, keep)
    except InputError as e:
        return e
    return InputError(f"{path}: a column is missing: {expected_header(features, keep)}", file=path)


def describe(path: str, kind: str, reader: Any, features: Sequence[str], keep: Sequence[str],
             categories: Sequence[str] = ()) -> Source:
    """Check the columns (features by name, kept ones) and say how big the input is. categories: features that
    may be text (a model's category columns)."""
    if kind == "npy":
        return _describe_npy(path, reader, features, keep)
    schema = reader.schema_arrow if kind == "parquet" else reader.schema
    check_columns(path, list(schema.names), features, keep, header=kind == "csv")
    for f in features:
        t = schema.field(f).type
        text = f in categories and (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t))
        if not (pa.types.is_floating(t) or pa.types.is_integer(t) or text):
            raise InputError(f"{path}: feature column {f!r} has type {t}: expected numbers (float or int)")
    if kind == "parquet":
        return Source(path, kind, schema, reader.metadata.num_rows, False)
    size = None if path == STDIN else Path(path).stat().st_size
    return Source(path, kind, schema, size, True)


def _describe_npy(path: str, arr: np.ndarray, features: Sequence[str], keep: Sequence[str]) -> Source:
    if keep:
        raise InputError(f"--keep column {keep[0]!r} is not in {path}: a .npy array has no named columns")
    if arr.ndim != 2 or arr.shape[1] != len(features) or arr.dtype.kind not in "fiu":
        raise InputError(f"{path} holds a {arr.dtype} array of shape {arr.shape}: expected (N, {len(features)}) "
                         f"numbers, the features {', '.join(features)} in order")
    schema = pa.schema([(f, pa.float32()) for f in features])
    return Source(path, "npy", schema, int(arr.shape[0]), False)


def batches(src: Source, reader: Any, features: Sequence[str], keep: Sequence[str],
            batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The source's rows in order, in batches; an arrow error becomes an InputError naming the file and line."""
    if src.kind == "npy":
        for start in range(0, src.total or 0, batch_rows):
            block = np.ascontiguousarray(reader[start:start + batch_rows], np.float32)  # (B, F), one batch in memory
            yield pa.RecordBatch.from_arrays([arrow_f32(block[:, j]) for j in range(len(features))], names=list(features))
        return
    wanted = wanted_columns(features, keep)
    it = reader.iter_batches(batch_size=batch_rows, columns=wanted) if src.kind == "parquet" else reader
    done = 0
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as e:
            raise locate_error(src, features, keep, done, e) from None
        done += batch.num_rows
        yield batch


def locate_error(src: Source, features: Sequence[str], keep: Sequence[str], done: int, err: Exception) -> InputError:
    """A reader failed after `done` good rows: name the line and the problem where we can (CSV files), else the row."""
    if src.kind == "csv" and src.path != STDIN:
        found = _csv_problem(src.path, features, keep)
        if found is not None:
            return found
    return InputError(f"{src.path}: unreadable data after row {done:,}: {first_line(err)}", file=src.path)


def _csv_problem(path: str, features: Sequence[str], keep: Sequence[str]) -> InputError | None:
    """The first row of a CSV that cannot be read: a value that is not a number, or a row of the wrong length."""

    def check(batch: pa.RecordBatch, start: int) -> None:
        bad = first_not_number(batch, features, pa.float32())
        if bad is not None:
            row, column = bad
            raise not_a_number(position(path, "csv", start + row), column, batch.column(column)[row].as_py().strip(" \t"))

    try:
        ragged = locate_csv(path, wanted_columns(features, keep), check)
    except InputError as e:
        return e
    return ragged.error(lambda i: position(path, "csv", i), path) if ragged is not None else None


def arrow_f32(a: np.ndarray) -> pa.Array:
    """A float32 arrow array over a numpy vector (pa.array would import pandas on its first call: +0.5 s)."""
    a = np.ascontiguousarray(a, np.float32)
    return pa.Array.from_buffers(pa.float32(), len(a), [None, pa.py_buffer(a)])


_NUMPY = {pa.float32(): np.float32, pa.float64(): np.float64, pa.int8(): np.int8, pa.int16(): np.int16,
          pa.int32(): np.int32, pa.int64(): np.int64, pa.uint8(): np.uint8, pa.uint16(): np.uint16,
          pa.uint32(): np.uint32, pa.uint64(): np.uint64}


def numpy_of(col: pa.Array) -> np.ndarray:
    """A numeric arrow column without nulls as a numpy view of its buffer (no copy, no pandas)."""
    dtype = _NUMPY.get(col.type)
    if dtype is None:
        return np.asarray(col.to_numpy(zero_copy_only=False))
    return np.frombuffer(col.buffers()[1], dtype, count=len(col), offset=col.offset * np.dtype(dtype).itemsize)


def arrow_strings(values: Sequence[str]) -> pa.Array:
    """A string arrow array built from its buffers, for the same reason as arrow_f32."""
    data = [v.encode() for v in values]
    offsets = np.cumsum([0] + [len(d) for d in data], dtype=np.int32)  # (n + 1,)
    return pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])
