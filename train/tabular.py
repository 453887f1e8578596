"""A user's table (CSV, Parquet or pandas DataFrame) as checked float32 features and integer class labels.

Reading is pyarrow's (its CSV reader infers each column's type over the whole file); this module only checks
what it read. Every mistake in the data is an InputError of one line naming the source, the column and the
row (rows count from 1, the first row under the header being row 1). Only pyarrow and numpy are needed here;
pandas only when the caller passes a DataFrame, scikit-learn only for the stratified split.
"""

from __future__ import annotations

import math
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeclf.runtime.errors import InputError

MIN_ROWS = 10
MAX_CLASSES = 1000  # more distinct labels than this is almost surely a regression target
NAME_MAX = 64
PARQUET_SUFFIXES = (".parquet", ".pq")


class DataWarning(UserWarning):
    """Something in the data that training survives but the user should hear about (a constant feature)."""


@dataclass(frozen=True)
class Table:
    x: np.ndarray  # (N, F) float32, finite
    y: np.ndarray  # (N,) int64 indices into classes
    classes: tuple[str, ...]  # sorted distinct labels, as strings
    features: tuple[str, ...]
    source: str  # how messages name where the table came from
    warnings: tuple[str, ...] = field(default=())  # notes on what was read (e.g. columns left out)

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def _error(msg: str) -> InputError:
    # one line whatever the column names or values hold
    return InputError(msg.replace("\r", "\\r").replace("\n", "\\n"))


def _show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Rows:
    """How a row index is shown: 1-based under the header, plus the index label for a DataFrame. `offset`: the
    rows before this batch, when a file is read in batches."""

    def __init__(self, index: Any = None, offset: int = 0) -> None:
        self.index = index
        self.offset = offset

    def __call__(self, i: int) -> str:
        if self.index is None:
            return f"row {self.offset + i + 1}"
        return f"row {i + 1} (index {_show(self.index[i])})"


# ---------------------------------------------------------------------------------------------- reading


def _read_csv(path: Path, where: str) -> Any:
    import pyarrow as pa

    try:
        table = _pyarrow_csv(path, threads=True)
    except _Ragged:
        # only the serial reader knows row numbers: read again to name the row
        try:
            _pyarrow_csv(path, threads=False)
        except _Ragged as r:
            raise _error(f"{where}: {r}") from None
    except (OSError, pa.ArrowException, ValueError) as e:
        raise _error(f"{where}: cannot read it as CSV ({e})") from None
    _check_header([str(n) for n in table.column_names], where)
    return table


def _check_header(names: list[str], where: str) -> None:
    if names and all(_is_number(n) for n in names):
        raise _error(
            f"{where}: the first line ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}) is all numbers: "
            "a header line naming the columns is required"
        )


class _Ragged(Exception):
    """A CSV row with more or fewer cells than the header."""


def _pyarrow_csv(path: Path, threads: bool) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    ragged: list[Any] = []

    def on_ragged(row: Any) -> str:
        ragged.append(row)
        return "error"

    # empty text cells become nulls too, so an empty label is caught like an empty number
    convert = pcsv.ConvertOptions(strings_can_be_null=True)
    # quoted cells may hold line breaks (free-text columns): slower to split, but read right
    parse = pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_ragged)
    try:
        return pcsv.read_csv(
            path, read_options=pcsv.ReadOptions(use_threads=threads), parse_options=parse, convert_options=convert
        )
    except pa.ArrowException:
        if not ragged:
            raise
        r = ragged[0]  # pyarrow counts the header as row 1
        at = f"row {r.number - 1}" if r.number is not None else "a row"
        raise _Ragged(f"{at} has {r.actual_columns} cells where the header has {r.expected_columns}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_parquet(path: Path, where: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # ParquetFile.read, not read_table: the dataset reader fails on duplicate names before we can name them
    try:
        return pq.ParquetFile(path).read()
    except (OSError, pa.ArrowException, ValueError) as e:
        raise _error(f"{where}: cannot read it as Parquet, the file is corrupt or not Parquet ({e})") from None


def _from_frame(frame: Any) -> Any:
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


def _is_frame(source: Any) -> bool:
    return hasattr(source, "columns") and hasattr(source, "iloc") and hasattr(source, "index")


def _read(source: Any, where: str | None) -> tuple[Any, str]:
    """(pyarrow Table, how to name the source) from a path or a DataFrame."""
    if _is_frame(source):
        return _from_frame(source), where or "DataFrame"
    if not isinstance(source, (str, Path)):
        raise _error(f"expected a CSV/Parquet path or a pandas DataFrame, got {type(source).__name__}")
    path = Path(source)
    where = where or str(path)
    if not path.is_file():
        raise _error(f"{where}: no such file" if not path.exists() else f"{where}: not a file")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return _read_parquet(path, where), where
    return _read_csv(path, where), where


# ---------------------------------------------------------------------------------------------- columns


def _check_names(names: list[str], where: str) -> None:
    seen: set[str] = set()
    dups = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if dups:
        raise _error(f"{where}: duplicate column names {sorted(set(dups))}: each column needs a distinct name")


def _is_numeric_type(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _pick_features(table: Any, label: str, features: Sequence[str] | None, where: str) -> tuple[list[str], list[str]]:
    """(feature names, notes on the columns left out)."""
    names = list(table.column_names)
    if features is None:
        picked = [n for n in names if n != label and _is_numeric_type(table.schema.field(n).type)]
        skipped = [f"{n!r} ({table.schema.field(n).type})" for n in names if n != label and n not in picked]
        if not picked:
            raise _error(f"{where}: no numeric column besides the label {label!r} (columns: {names})")
        notes = [f"{where}: non-numeric columns left out of the features: {', '.join(skipped)}"] if skipped else []
        return picked, notes
    picked = [str(f) for f in features]
    if not picked:
        raise _error(f"{where}: the feature list is empty: name at least one column")
    _check_names(picked, f"{where}: features")
    for f in picked:
        if f == label:
            raise _error(f"{where}: column {label!r} is the label and cannot also be a feature")
        if f not in names:
            raise _error(f"{where}: feature column {f!r} not found; columns: {names}")
    return picked, []


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _first_uncastable(col: Any, to: Any = None) -> int:
    """Index of the first value pyarrow cannot cast to `to` (float64) (bisection over prefixes: vectorised casts)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    to = to or pa.float64()

    lo, hi = 0, len(col)  # the prefix [0, hi) fails to cast, [0, lo) casts
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            pc.cast(col.slice(0, mid), to)
            lo = mid
        except (pa.ArrowException, ValueError):
            hi = mid
    return lo


def _feature_column(table: Any, name: str, where: str, rows: _Rows) -> np.ndarray:
    """One feature as float64 (N,), or an InputError naming the first bad cell."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(name)
    if pa.types.is_dictionary(col.type):
        col = pc.cast(col, col.type.value_type)
    if col.null_count:
        i = _first(np.asarray(pc.is_null(col)))
        raise _error(f"{where}: column {name!r} {rows(i)}: empty cell; expected a number in every row")
    if pa.types.is_boolean(col.type):
        raise _error(f"{where}: column {name!r} holds true/false values: expected numbers (encode it as 0/1)")
    if not _is_numeric_type(col.type):
        try:
            col = pc.cast(col, pa.float64())
        except (pa.ArrowException, ValueError):
            i = _first_uncastable(col)
            value = col[i].as_py()
            raise _error(
                f"{where}: column {name!r} {rows(i)}: non-numeric value {_show(value)}; expected numbers "
                "(leave the column out of the features to ignore it)"
            ) from None
    return np.asarray(pc.cast(col, pa.float64()), dtype=np.float64)


def _features_matrix(table: Any, names: list[str], where: str, rows: _Rows) -> np.ndarray:
    x = np.empty((table.num_rows, len(names)), dtype=np.float32)  # (N, F)
    for j, name in enumerate(names):
        x64 = _feature_column(table, name, where, rows)  # (N,)
        with np.errstate(over="ignore", under="ignore"):  # a subnormal float64 becomes 0 or a float32 subnormal
            x[:, j] = x64
        bad = ~np.isfinite(x[:, j])
        if bad.any():
            i = _first(bad)
            what = "NaN" if np.isnan(x64[i]) else ("infinite" if np.isinf(x64[i]) else "beyond float32's range")
            raise _error(f"{where}: column {name!r} {rows(i)}: value {float(x64[i])!r} is {what}; expected finite numbers")
    return x


# ---------------------------------------------------------------------------------------------- labels


def _label_values(table: Any, label: str, where: str, rows: _Rows) -> Any:
    """The label column, checked: no empty cells, of a supported type, integral when it is float."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(label)
    if pa.types.is_dictionary(col.type):
        col = pc.cast(col, col.type.value_type)
    if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
        col = _as_text(col, label, where, rows)  # pyarrow's CSV reader keeps non-UTF-8 text as bytes
    t = col.type
    empty = np.asarray(pc.is_null(col, nan_is_null=True))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        empty |= np.asarray(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(col), ""), False))
    if empty.any():
        raise _error(f"{where}: label column {label!r} {rows(_first(empty))}: empty label; every row needs its class")
    text = pa.types.is_string(t) or pa.types.is_large_string(t)
    if not (text or pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        raise _error(f"{where}: label column {label!r} has type {t}: expected strings or integers")
    if pa.types.is_floating(t):
        col = _integral_labels(col, label, where, rows)
    return col


def _as_text(col: Any, label: str, where: str, rows: _Rows) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(col, pa.string())
    except (pa.ArrowException, ValueError):
        i = _first_uncastable(col, pa.string())
        raise _error(
            f"{where}: label column {label!r} {rows(i)}: {_show(col[i].as_py())} is not UTF-8 text; save the file as UTF-8"
        ) from None


def _integral_labels(col: Any, label: str, where: str, rows: _Rows) -> Any:
    import pyarrow as pa

    v = np.asarray(col, dtype=np.float64)  # (N,)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(v) | (v != np.floor(v)) | (np.abs(v) > 2.0**53)
    if bad.any():
        i = _first(bad)
        raise _error(
            f"{where}: label column {label!r} {rows(i)}: value {float(v[i])!r} is not a whole number; class labels must be "
            "strings or integers (a float target is a regression problem, which this tool does not train)"
        )
    return pa.chunked_array([pa.array(v.astype(np.int64))])


def _encode_labels(col: Any, label: str, where: str) -> tuple[np.ndarray, tuple[str, ...], list[Any]]:
    """(y (N,) int64, classes as strings, the distinct raw values in class order)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    distinct = pc.unique(col)
    if len(distinct) > MAX_CLASSES:
        raise _error(
            f"{where}: label column {label!r} has {len(distinct)} distinct values (more than {MAX_CLASSES}): "
            "it is probably a regression target, not classes"
        )
    values = sorted(distinct.to_pylist())  # numbers numerically, text by code point
    y = np.asarray(pc.index_in(col, value_set=pa.array(values, type=col.type)), dtype=np.int64)  # (N,)
    return y, tuple(str(v) for v in values), values


def _check_classes(y: np.ndarray, classes: tuple[str, ...], label: str, where: str, rows: _Rows) -> None:
    """A training table: two classes at least, and two rows of each so that a stratified split exists."""
    check_counts(np.bincount(y, minlength=len(classes)), classes, label, where, lambda c: rows(_first(y == c)))


def check_counts(counts: np.ndarray, classes: tuple[str, ...], label: str, where: str,
                 first_row: Callable[[int], str]) -> None:
    """counts (C,) rows per class; first_row(c) names class c's first row."""
    if len(classes) < 2:
        raise _error(f"{where}: label column {label!r} holds one class only ({classes[0]!r}): need two or more")
    lonely = np.flatnonzero(counts < 2)
    if lonely.size:
        c = int(lonely[0])
        more = f" (and {lonely.size - 1} more classes)" if lonely.size > 1 else ""
        raise _error(
            f"{where}: label column {label!r}: class {classes[c]!r} has one row only ({first_row(c)}){more}: "
            "a stratified split needs at least 2 rows per class"
        )


# ---------------------------------------------------------------------------------------------- public API


def load_table(
    source: str | Path | Any,
    label: str,
    features: Sequence[str] | None = None,
    *,
    where: str | None = None,
    reference: Table | None = None,
) -> Table:
    """Read and check a table: a CSV path (header required), a .parquet/.pq path, or a pandas DataFrame.

    `label` names the class column (strings or integers; integral floats are taken as integers). `features`
    defaults to every numeric column but the label. `where` is how messages name the source (default: the
    path, or "DataFrame"). `reference`: load this as the test table of that training table: its features
    (by name, any column order) and its classes (a class it never saw is an error); the training-only checks
    (10 rows, 2 classes, 2 rows per class) are then skipped. Raises InputError naming file, column and row.
    """
    raw, where = _read(source, where)
    names = [str(n) for n in raw.column_names]
    _check_names(names, where)
    if label not in names:
        raise _error(f"{where}: label column {label!r} not found; columns: {names}")
    if reference is not None and features is None:
        features = reference.features
    _check_row_count(raw.num_rows, where, 1 if reference is not None else MIN_ROWS)
    picked, notes = _pick_features(raw, label, features, where)
    rows = _rows_of(source)
    col = _label_values(raw, label, where, rows)
    y, classes, _ = _encode_labels(col, label, where)
    if reference is None:
        _check_classes(y, classes, label, where, rows)
    else:
        y, classes = _onto_classes(y, classes, reference.classes, label, where), reference.classes
    x = _features_matrix(raw, picked, where, rows)
    return Table(x=x, y=y, classes=classes, features=tuple(picked), source=where, warnings=tuple(notes))


def _rows_of(source: Any) -> _Rows:
    return _Rows(source.index if _is_frame(source) and not _is_default_index(source.index) else None)


def _check_row_count(n: int, where: str, least: int) -> None:
    if n < least:
        raise _error(f"{where}: {n} data rows: need at least {least}")


def _is_default_index(index: Any) -> bool:
    return bool(
        len(index) == 0
        or (
            index.dtype.kind in "iu"
            and index[0] == 0
            and index.is_monotonic_increasing
            and index[-1] == len(index) - 1
            and index.is_unique
        )
    )


def _onto_classes(y: np.ndarray, classes: tuple[str, ...], known: tuple[str, ...], label: str, where: str) -> np.ndarray:
    """Re-express class indices of one table in another table's class order; unseen classes are an error."""
    unseen = [c for c in classes if c not in known]
    if unseen:
        raise _error(
            f"{where}: label column {label!r}: class {unseen[0]!r} is not among the training classes {list(known)}"
            + (f" (and {len(unseen) - 1} more unseen)" if len(unseen) > 1 else "")
        )
    lookup = np.array([known.index(c) for c in classes], dtype=np.int64)  # (C_here,)
    return np.asarray(lookup[y], dtype=np.int64)  # (N,)


def split_table(
    table: Table, *, seed: int = 42, test_size: float = 0.2, test: Table | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): a stratified split of `table`, or all of it against a given test table."""
    if test is not None:
        return (table.x, table.y, test.x, _test_labels(table, test))
    from sklearn.model_selection import train_test_split

    n, c = len(table.y), table.n_classes
    n_test = math.ceil(test_size * n)  # sklearn's rounding of a float test_size
    if not 0 < test_size < 1 or n_test < c or n - n_test < c:
        raise _error(
            f"{table.source}: {n} rows in {c} classes cannot be split {1 - test_size:.0%}/{test_size:.0%} with every "
            f"class on both sides: need a test share of at least {c} rows and a training share of at least {c}"
        )
    x_tr, x_te, y_tr, y_te = train_test_split(table.x, table.y, test_size=test_size, random_state=seed, stratify=table.y)
    absent = sorted(set(range(c)) - set(np.unique(y_tr).tolist()))
    if absent:  # possible only with a large test_size: a class of 2 rows both drawn into the test share
        raise _error(
            f"{table.source}: the training split holds no row of class {table.classes[absent[0]]!r}: lower test_size"
        )
    return x_tr, y_tr, x_te, y_te


def _test_labels(train: Table, test: Table) -> np.ndarray:
    if test.features != train.features:
        raise _error(
            f"{test.source}: features {list(test.features)} differ from the training table's {list(train.features)}"
        )
    return _onto_classes(test.y, test.classes, train.classes, "label", test.source)


def standardisation(x_train: np.ndarray, features: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean (F,), std (F,)) float32 of the training features; a constant feature's std 0 becomes 1 (warned)."""
    x64 = np.asarray(x_train, dtype=np.float64)  # (N, F)
    mean = x64.mean(axis=0).astype(np.float32)  # (F,)
    std = x64.std(axis=0).astype(np.float32)  # (F,) population std, as StandardScaler
    constant = (x64.max(axis=0) == x64.min(axis=0)) | (std == 0)
    for j in np.flatnonzero(constant):
        warn_constant(repr(features[int(j)]) if features is not None else f"#{j}", float(x64[0, j]))
    std[constant] = 1.0
    return mean, std


def warn_constant(name: str, value: float) -> None:
    warnings.warn(
        f"feature {name} is constant in the training split (value {value!r}): it carries no information; "
        "its std is taken as 1",
        DataWarning,
        stacklevel=3,
    )


def feature_schema(x_train: np.ndarray, features: Sequence[str]) -> list[dict[str, Any]]:
    """Per feature: name, dtype, and the training split's min, max, mean and (raw, population) std, JSON-safe."""
    x64 = np.asarray(x_train, dtype=np.float64)  # (N, F)
    if x64.ndim != 2 or x64.shape[1] != len(features):
        raise _error(f"feature_schema: x has shape {x64.shape}: expected (N, {len(features)}) for {list(features)}")

    def f32(v: Any) -> float:
        return float(np.float32(v))  # an exactly float32-representable Python float: JSON round-trips it

    return [
        {
            "name": str(name),
            "dtype": "float32",
            "min": f32(x64[:, j].min()),
            "max": f32(x64[:, j].max()),
            "mean": f32(x64[:, j].mean()),
            "std": f32(x64[:, j].std()),
        }
        for j, name in enumerate(features)
    ]


def sanitize_name(stem: str) -> str:
    """A task name from a file stem: lowercase [a-z0-9_-], starting with a letter or digit, 1 to 64 characters."""
    ascii_text = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii").lower()
    name = re.sub(r"[^a-z0-9_-]+", "_", ascii_text).strip("_-")[:NAME_MAX].rstrip("_-")
    return name or "table"
