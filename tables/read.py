"""Reading a table file with pyarrow: whole (CSV, Parquet, a pandas DataFrame) or in record batches of its label
and feature columns (TableFile), and the one re-read that finds the row a failed CSV read stopped at (locate_csv).
Every reader is closed on every path: pyarrow's streaming CSV reader reads ahead on a thread, and one alive at
interpreter exit can abort the process."""

from __future__ import annotations

import contextlib
import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from edgeclf.runtime.errors import InputError, first_line
from edgeclf.tables.categories import is_text_type
from edgeclf.tables.columns import RowNames, check_names, features_matrix, first_uncastable, pick_features
from edgeclf.tables.kinds import check_text_file, is_parquet
from edgeclf.tables.messages import bad_cell_count, check_header, one_line, show

READ_ROWS = 65_536  # rows per Parquet record batch
CSV_BLOCK = 1 << 22  # bytes per CSV block (4 MiB: ~10k-60k rows)
HEADER_REQUIRED = "a header line naming the columns is required"


# ---------------------------------------------------------------------------------------------- the locator


@dataclass(frozen=True)
class Ragged:
    """A CSV row with more or fewer cells than the header; row: 0-based under the header (None: unknown)."""

    row: int | None
    got: int
    expected: int
    text: bool = True  # False: the row is not UTF-8 text (got and expected then mean nothing)

    def error(self, at: Callable[[int], str], where: str) -> InputError:
        """at(row) names a row in the caller's terms ("row 7", "f.csv line 8")."""
        here = at(self.row) if self.row is not None else f"{where}: a row"
        if not self.text:
            return one_line(f"{here}: not UTF-8 text; save the file as UTF-8", file=where)
        return bad_cell_count(here, self.got, self.expected)


class _RaggedRows(list[Any]):
    """pyarrow's bad-row handler: keeps each row of the wrong length and fails the read there."""

    def __call__(self, row: Any) -> str:
        self.append(row)
        return "error"


@contextlib.contextmanager
def quiet_callbacks() -> Iterator[list[BaseException]]:
    """pyarrow calls the bad-row handler with the row as text; a row that is not UTF-8 fails inside pyarrow before
    the handler runs, and Python prints that as 'Exception ignored ... Traceback'. Kept here instead: the read
    fails anyway, and its caller names the problem in one line."""
    caught: list[BaseException] = []
    before = sys.unraisablehook
    sys.unraisablehook = lambda u: caught.append(u.exc_value) if u.exc_value is not None else None
    try:
        yield caught
    finally:
        sys.unraisablehook = before


def csv_reader(path: Any, types: dict[str, Any] | None = None, *, threads: bool = True, block: int = CSV_BLOCK,
               on_ragged: Any = None, nulls: bool = True) -> Any:
    """pyarrow's streaming CSV reader; types: the columns to convert (only those) and their types."""
    import pyarrow.csv as pcsv

    # empty text cells become nulls too, so an empty label is caught like an empty number
    convert = pcsv.ConvertOptions(strings_can_be_null=nulls, column_types=types,
                                  include_columns=list(types) if types else None)
    # quoted cells may hold line breaks (free-text columns): slower to split, but read right
    parse = pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_ragged)
    return pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=block, use_threads=threads),
                         parse_options=parse, convert_options=convert)


def locate_csv(path: Path | str, columns: Sequence[str], check: Callable[[Any, int], None]) -> Ragged | None:
    """Read a CSV again (error path only), serially and with `columns` as text. check(batch, start) raises at a
    value that is not what its column needs; the first row of the wrong length is returned (None: none found)."""
    import pyarrow as pa

    ragged = _RaggedRows()
    text = {c: pa.string() for c in columns} or None
    with quiet_callbacks():
        try:
            with contextlib.closing(csv_reader(path, text, threads=False, block=1 << 20, on_ragged=ragged)) as reader:
                start = 0
                for batch in reader:
                    check(batch, start)  # an InputError of the caller's goes to the caller
                    start += batch.num_rows
        except (pa.ArrowException, OSError) as e:
            if not ragged and "invalid UTF8" in str(e) and "Row #" in str(e):  # pyarrow counts the header as row 1
                return Ragged(int(str(e).split("Row #", 1)[1].split(":", 1)[0]) - 2, 0, 0, text=False)
    if not ragged:
        return None
    r = ragged[0]  # pyarrow counts the header as row 1
    return Ragged(r.number - 2 if r.number is not None else None, r.actual_columns, r.expected_columns)


def first_not_number(batch: Any, columns: Sequence[str], to: Any) -> tuple[int, str] | None:
    """(row, column) of the batch's first text value that does not convert to `to`, over the given columns."""
    import pyarrow as pa

    worst: tuple[int, str] | None = None
    for c in columns:
        col = batch.column(c)
        try:
            col.cast(to)
            continue
        except (pa.ArrowException, ValueError):
            i = first_uncastable(col, to)
        if worst is None or i < worst[0]:
            worst = (i, c)
    return worst


# ---------------------------------------------------------------------------------------------- whole tables


def read_csv(path: Path, where: str) -> Any:
    """A CSV file as a pyarrow Table (its reader infers each column's type over the whole file)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    check_text_file(path, where)
    # No invalid_row_handler here: a Python callback held by pyarrow's threaded whole-file reader can abort the
    # process at exit once torch is loaded ("terminate called without an active exception"); a bad row is found
    # on the error path instead, by the serial reader (locate_csv), which is also the only one that counts rows.
    parse = pcsv.ParseOptions(newlines_in_values=True)
    try:
        table = pcsv.read_csv(path, parse_options=parse, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
    except (OSError, pa.ArrowException, ValueError) as e:
        found = locate_csv(path, (), lambda batch, start: None)  # it silences pyarrow's callbacks itself
        if found is not None:
            raise found.error(lambda i: f"{where}: row {i + 1}", where) from None
        if "invalid UTF8" in str(e):  # pyarrow's message would quote raw bytes
            raise one_line(f"{where}: a row is not UTF-8 text; save the file as UTF-8", file=where) from None
        raise one_line(f"{where}: cannot read it as CSV ({e})", file=where) from None
    check_header([str(n) for n in table.column_names], where, HEADER_REQUIRED)
    return table


def read_parquet(path: Path, where: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # ParquetFile.read, not read_table: the dataset reader fails on duplicate names before we can name them
    try:
        return pq.ParquetFile(path).read()
    except (OSError, pa.ArrowException, ValueError) as e:
        raise one_line(f"{where}: cannot read it as Parquet, the file is corrupt or not Parquet ({e})") from None


def from_frame(frame: Any) -> Any:
    """A pandas DataFrame as a pyarrow Table, column by column so one odd column cannot sink the rest."""
    import pyarrow as pa

    arrays = []
    for i in range(frame.shape[1]):
        series = frame.iloc[:, i]
        try:
            arrays.append(pa.array(series, from_pandas=True))
        except (pa.ArrowException, TypeError, ValueError):
            # mixed Python objects: keep them as text, so a feature is reported as non-numeric by its value
            arrays.append(pa.array([None if _is_missing(v) else str(v) for v in series], type=pa.string()))
    return pa.Table.from_arrays(arrays, names=[str(c) for c in frame.columns])


def _is_missing(v: Any) -> bool:
    import pandas as pd  # only reached for a DataFrame, so pandas is there; its isna knows None, NaN, NA, NaT

    return bool(pd.isna(v)) if pd.api.types.is_scalar(v) else False


def is_frame(source: Any) -> bool:
    return hasattr(source, "columns") and hasattr(source, "iloc") and hasattr(source, "index")


def existing_file(path: Path, where: str) -> None:
    if not path.is_file():
        raise one_line(f"{where}: no such file" if not path.exists() else f"{where}: not a file", file=where)


def read_table(source: Any, where: str | None) -> tuple[Any, str]:
    """(pyarrow Table, how to name the source) from a CSV/Parquet path or a DataFrame."""
    if is_frame(source):
        return from_frame(source), where or "DataFrame"
    if not isinstance(source, (str, Path)):
        raise one_line(f"expected a CSV/Parquet path or a pandas DataFrame, got {type(source).__name__}")
    path = Path(source)
    where = where or str(path)
    existing_file(path, where)
    if is_parquet(path):
        return read_parquet(path, where), where
    return read_csv(path, where), where


# ---------------------------------------------------------------------------------------------- in batches


class TableFile:
    """A CSV or Parquet file read as record batches of its label and feature columns, as often as needed."""

    def __init__(self, path: Path, label: str, features: Sequence[str] | None, where: str | None = None) -> None:
        self.path, self.label, self.where = path, label, where or str(path)
        existing_file(path, self.where)
        self.parquet = is_parquet(path)
        schema = self._parquet_schema() if self.parquet else self._csv_schema()
        names = [str(n) for n in schema.names]
        check_names(names, self.where)
        if label not in names:
            raise one_line(f"{self.where}: label column {label!r} not found; columns: {names}", column=label)
        import pyarrow as pa

        # an empty Table of the schema (not schema.empty_table(), which imports pandas: 40 MB)
        picked, self.notes = pick_features(pa.Table.from_batches([], schema=schema), label, features, self.where,
                                           text=True)
        self.explicit = features is not None
        self.features = tuple(picked)
        self.columns = [label, *picked]
        # text in the schema (a CSV's first block): the first pass decides what each is (tables/textscan.py)
        self.text = tuple(f for f in picked if is_text_type(schema.field(f).type))
        self.vocabs: tuple[tuple[str, ...] | None, ...] = ()  # per feature once decided: its categories or None
        self.empty_ok = False  # empty feature cells are NaN (to be imputed) instead of an error
        self._label_type = schema.field(label).type
        self.types = self._csv_types()

    def decided(self, features: Sequence[str], vocabs: Sequence[tuple[str, ...] | None]) -> TableFile:
        """This file read with the features the first pass kept: categories as text, every other one a number."""
        out = copy.copy(self)
        out.features, out.columns, out.vocabs = tuple(features), [self.label, *features], tuple(vocabs)
        out.text = tuple(f for f, v in zip(features, vocabs) if v is not None)
        out.types = out._csv_types()
        return out

    def _parquet_schema(self) -> Any:
        try:
            return self._parquet().schema_arrow
        except Exception as e:  # pyarrow raises ArrowException, OSError or ValueError for a file that is not Parquet
            raise self._parquet_error(e) from None

    def _parquet(self) -> Any:
        return parquet_file(self.path)

    def _parquet_error(self, e: Exception) -> Exception:
        return one_line(f"{self.where}: cannot read it as Parquet, the file is corrupt or not Parquet "
                        f"({first_line(e)})")

    def _csv_schema(self) -> Any:
        """The columns and the types pyarrow infers from the first block."""
        check_text_file(self.path, self.where)
        try:
            with contextlib.closing(csv_reader(self.path)) as reader:
                schema = reader.schema
        except Exception as e:
            raise self._csv_error(e) from None
        check_header([str(n) for n in schema.names], self.where, HEADER_REQUIRED)
        return schema

    def _csv_types(self) -> dict[str, Any]:
        """Features as float64 (text ones as text); the label as the first block's type (integers as int64, floats
        as float64), so that a later block can neither change it nor be read another way."""
        import pyarrow as pa

        t = self._label_type
        label = pa.int64() if pa.types.is_integer(t) else pa.float64() if pa.types.is_floating(t) else t
        return {self.label: label, **{f: pa.string() if f in self.text else pa.float64() for f in self.features}}

    def batches(self) -> Iterator[tuple[int, Any]]:
        """(index of the batch's first row, RecordBatch with the label and feature columns), in file order."""
        reader = None
        try:
            start = 0
            while True:
                try:
                    reader = reader or self._open()  # a CSV reader reads its first block on opening
                    batch = next(reader)
                except StopIteration:
                    return
                except Exception as e:  # pyarrow's ArrowException, OSError, ValueError
                    raise (self._parquet_error(e) if self.parquet else self._csv_error(e)) from None
                yield start, batch
                start += batch.num_rows
        finally:
            close = getattr(reader, "close", None)
            if close is not None:
                close()

    def _open(self) -> Any:
        if self.parquet:
            # one thread: pyarrow's threaded decoding raises the memory peak for no time that matters here
            return iter(self._parquet().iter_batches(batch_size=READ_ROWS, columns=self.columns, use_threads=False))
        return csv_reader(self.path, self.types)

    def _csv_error(self, err: Exception) -> Exception:
        """The reader failed somewhere: read again to name the row (a row of the wrong length, or a value that is
        not of its column's type)."""
        columns = getattr(self, "columns", [])  # none yet while the header is read: nothing to check but lengths
        ragged = locate_csv(self.path, columns, lambda batch, start: self._check_text(batch, RowNames(offset=start))
                            if columns else None)
        if ragged is not None:
            return ragged.error(lambda i: f"{self.where}: row {i + 1}", self.where)
        return one_line(f"{self.where}: cannot read it as CSV ({first_line(err)})", file=self.where)

    def _check_text(self, batch: Any, rows: RowNames) -> None:
        import pyarrow as pa

        numbers = [f for f in self.features if f not in self.text]
        features_matrix(batch, numbers, self.where, rows, self.empty_ok)  # raises at a value that is not a number
        col, want = batch.column(self.label), self.types[self.label]
        if pa.types.is_string(want):
            return
        bad = first_not_number(batch, [self.label], want)
        if bad is not None:
            i = bad[0]
            kind = "an integer" if pa.types.is_integer(want) else "a number"
            raise one_line(
                f"{self.where}: label column {self.label!r} {rows(i)}: value {show(col[i].as_py())} is not {kind} "
                "like the labels in the file's first rows; give every row a label of one kind", column=self.label)


def parquet_file(path: str | Path) -> Any:
    """Without pre-buffering: pyarrow's default reads column chunks of many row groups ahead, so peak memory would
    grow with the file."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
