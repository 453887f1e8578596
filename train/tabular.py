"""A user's table (CSV, Parquet or pandas DataFrame) as checked float32 features and integer class labels.

Reading and the column checks are edgeclf.tables' (pyarrow's CSV reader infers each column's type over the whole
file); this module makes a training or test table of them, splits it and measures it. Every mistake in the data is
an InputError of one line naming the source, the column and the row (rows count from 1, the first row under the
header being row 1). pandas only when the caller passes a DataFrame, scikit-learn only for the stratified split.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeclf.tables.columns import (
    RowNames,
    check_classes,
    check_names,
    encode_labels,
    features_matrix,
    label_values,
    pick_features,
    vocabularies,
)
from edgeclf.tables.messages import one_line as _error
from edgeclf.tables.read import is_frame, read_table
from edgeclf.tables.stats import DataWarning, FeatureStats, schema_of

__all__ = ["DataWarning", "Table", "feature_schema", "load_table", "sanitize_name", "split_table", "standardisation"]

MIN_ROWS = 10
NAME_MAX = 64


@dataclass(frozen=True)
class Table:
    x: np.ndarray  # (N, F) float32, finite (NaN only for an empty cell loaded to be imputed)
    y: np.ndarray  # (N,) int64 indices into classes
    classes: tuple[str, ...]  # sorted distinct labels, as strings
    features: tuple[str, ...]
    source: str  # how messages name where the table came from
    warnings: tuple[str, ...] = field(default=())  # notes on what was read (e.g. columns left out)
    # per feature: its categories (x holds the value's index) or None for a number; () when there are none
    categories: tuple[tuple[str, ...] | None, ...] = field(default=())

    @property
    def n_classes(self) -> int:
        return len(self.classes)


# ---------------------------------------------------------------------------------------------- public API


def load_table(
    source: str | Path | Any,
    label: str,
    features: Sequence[str] | None = None,
    *,
    where: str | None = None,
    reference: Table | None = None,
    impute: str | None = None,
) -> Table:
    """Read and check a table: a CSV path (header required), a .parquet/.pq path, or a pandas DataFrame.

    `label` names the class column (strings or integers; integral floats are taken as integers). `features`
    defaults to every numeric column but the label. `where` is how messages name the source (default: the
    path, or "DataFrame"). `reference`: load this as the test table of that training table: its features
    (by name, any column order) and its classes (a class it never saw is an error); the training-only checks
    (10 rows, 2 classes, 2 rows per class) are then skipped. `impute`: empty feature cells are NaN in x (to
    be filled by train/impute.py) instead of an error. Raises InputError naming file, column and row.
    """
    raw, where = read_table(source, where)
    names = [str(n) for n in raw.column_names]
    check_names(names, where)
    if label not in names:
        raise _error(f"{where}: label column {label!r} not found; columns: {names}")
    if reference is not None and features is None:
        features = reference.features
    check_row_count(raw.num_rows, where, 1 if reference is not None else MIN_ROWS)
    picked, notes = pick_features(raw, label, features, where)
    rows = _rows_of(source)
    col = label_values(raw, label, where, rows)
    y, classes, _ = encode_labels(col, label, where)
    if reference is None:
        check_classes(y, classes, label, where, rows)
    else:
        y, classes = _onto_classes(y, classes, reference.classes, label, where), reference.classes
    known = None if reference is None else (reference.categories or (None,) * len(picked))
    vocabs = vocabularies(raw, picked, where, known)
    x = features_matrix(raw, picked, where, rows, empty_ok=impute is not None, vocabs=vocabs)
    cats = vocabs if any(v is not None for v in vocabs) else ()
    return Table(x=x, y=y, classes=classes, features=tuple(picked), source=where, warnings=tuple(notes),
                 categories=cats)


def _rows_of(source: Any) -> RowNames:
    return RowNames(source.index if is_frame(source) and not _is_default_index(source.index) else None)


def check_row_count(n: int, where: str, least: int = MIN_ROWS) -> None:
    """A table too small to split and train on (least: MIN_ROWS; 1 for a test table) is one line."""
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
    return FeatureStats.of(x_train).standardisation(features)


def feature_schema(x_train: np.ndarray, features: Sequence[str]) -> list[dict[str, Any]]:
    """Per feature: name, dtype, and the training split's min, max, mean and (raw, population) std, JSON-safe."""
    x64 = np.asarray(x_train, dtype=np.float64)  # (N, F)
    if x64.ndim != 2 or x64.shape[1] != len(features):
        raise _error(f"feature_schema: x has shape {x64.shape}: expected (N, {len(features)}) for {list(features)}")
    return schema_of(FeatureStats.of(x64), features)


def sanitize_name(stem: str) -> str:
    """A task name from a file stem: lowercase [a-z0-9_-], starting with a letter or digit, 1 to 64 characters."""
    ascii_text = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii").lower()
    name = re.sub(r"[^a-z0-9_-]+", "_", ascii_text).strip("_-")[:NAME_MAX].rstrip("_-")
    return name or "table"
