"""A table's columns as checked numbers: names, the features picked, feature and label values, class counts.
Every mistake is a one-line InputError naming the source, the column and the row (rows count from 1, the first
row under the header being row 1). pyarrow and numpy only."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from edgeclf.tables.categories import (
    MAX_CATEGORIES,
    category_codes,
    distinct_values,
    is_text_type,
    text_kind,
    vocabulary,
)
from edgeclf.tables.idlike import id_like, id_note
from edgeclf.tables.messages import one_line as _error
from edgeclf.tables.messages import show as _show

MAX_CLASSES = 1000  # more distinct labels than this is almost surely a regression target


class RowNames:
    """How a row index is shown: 1-based under the header, plus the index label for a DataFrame. `offset`: the
    rows before this batch, when a file is read in batches."""

    def __init__(self, index: Any = None, offset: int = 0) -> None:
        self.index = index
        self.offset = offset

    def __call__(self, i: int) -> str:
        if self.index is None:
            return f"row {self.offset + i + 1}"
        return f"row {i + 1} (index {_show(self.index[i])})"


def check_names(names: list[str], where: str) -> None:
    seen: set[str] = set()
    dups = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if dups:
        raise _error(f"{where}: duplicate column names {sorted(set(dups))}: each column needs a distinct name")


def is_numeric_type(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def pick_features(table: Any, label: str | Sequence[str], features: Sequence[str] | None, where: str,
                  text: bool = False, categories: bool = True) -> tuple[list[str], list[str]]:
    """(feature names, notes on the columns left out). label: the label column, or a multi-label model's label
    columns. By default: every numeric column but the labels and the id-like ones (tables/idlike.py); `features`
    takes any column, an id-like one too. text: a schema without rows (a file read in batches) picks its text
    columns too, for its first pass to decide (tables/textscan.py); without it they are left out with a note.
    categories=False (a multi-label model takes none yet): every non-numeric column is left out with a note."""
    labels = [label] if isinstance(label, str) else [str(n) for n in label]
    if features is None:
        return _default_features(table, labels, where, text, categories)
    names = list(table.column_names)
    picked = [str(f) for f in features]
    if not picked:
        raise _error(f"{where}: the feature list is empty: name at least one column")
    check_names(picked, f"{where}: features")
    check_not_label(picked, labels, where)
    for f in picked:
        if f not in names:
            raise _error(f"{where}: feature column {f!r} not found; columns: {names}")
    return picked, []


def check_not_label(features: Sequence[str], labels: Sequence[str], where: str) -> None:
    """A named feature that is also a label column is refused: a label cannot be an input."""
    both = next((f for f in features if f in labels), None)
    if both is None:
        return
    if len(labels) == 1:
        raise _error(f"{where}: column {both!r} is the label and cannot also be a feature")
    raise _error(f"{where}: {both!r} is both a label and a feature: a label cannot be an input")


def _default_features(table: Any, labels: Sequence[str], where: str, text: bool,
                      categories: bool) -> tuple[list[str], list[str]]:
    """Numeric columns and text columns of few values (categories), less the id-like ones. A schema without rows
    (a file streamed in batches) cannot tell a category from free text: with `text` its text columns are picked,
    and the first pass over the file decides (tables/textscan.py); else they are left out."""
    names = [n for n in table.column_names if n not in labels]
    ids = id_like(table, names)
    kinds = {n: _kind(table, n, text) if categories else
             ("number" if is_numeric_type(table.schema.field(n).type) else "none") for n in names if n not in ids}
    picked = [n for n, k in kinds.items() if k in ("number", "category", "text")]
    if not picked:
        left = f"; id-like columns left out: {list(ids)} (name them in the features to use them)" if ids else ""
        said = f"the label {labels[0]!r}" if len(labels) == 1 else f"the labels {list(labels)}"
        raise _error(f"{where}: no numeric column besides {said} (columns: {list(table.column_names)}){left}")
    notes = [id_note(ids, where)] if ids else []
    many = [f"{n!r} ({len(distinct_values(table, n))} values)" for n, k in kinds.items() if k == "many"]
    other = [f"{n!r} ({table.schema.field(n).type})" for n, k in kinds.items() if k == "other"]
    none = [f"{n!r} ({table.schema.field(n).type})" for n, k in kinds.items() if k == "none"]
    if none:  # categories=False
        notes.append(f"{where}: multi-label tables take no categories yet: non-numeric columns left out of the "
                     f"features: {', '.join(none)}")
    return picked, notes + left_out_notes(where, many, other)


def left_out_notes(where: str, many: Sequence[str], other: Sequence[str]) -> list[str]:
    """The lines naming the columns left out of the default features: text of too many values (free text), and
    other non-numeric columns; each column already shown with what it holds."""
    notes = []
    if many:
        notes.append(f"{where}: text columns with more than {MAX_CATEGORIES} distinct values (free text, not "
                     f"categories) left out of the features: {', '.join(many)}")
    if other:
        notes.append(f"{where}: non-numeric columns left out of the features: {', '.join(other)}")
    return notes


def _kind(table: Any, name: str, text: bool) -> str:
    """number, category (text of few values), many (text of many values), text (a schema without rows, to be
    decided) or other."""
    t = table.schema.field(name).type
    if is_numeric_type(t):
        return "number"
    if not is_text_type(t):
        return "other"
    if table.num_rows == 0:
        return "text" if text else "other"
    kind = text_kind(table, name)
    return kind if kind in ("category", "many") else "other"


def vocabularies(table: Any, names: Sequence[str], where: str,
                 known: Sequence[tuple[str, ...] | None] | None = None) -> tuple[tuple[str, ...] | None, ...]:
    """Per feature: its vocabulary when it is a text column (a category), else None. known: the training
    table's (a test table is coded with those)."""
    if known is not None:
        return tuple(known)
    return tuple(vocabulary(table, n, where) if is_text_type(table.schema.field(n).type) else None for n in names)


def first_index(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def first_uncastable(col: Any, to: Any = None) -> int:
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


def feature_column(table: Any, name: str, where: str, rows: RowNames, empty_ok: bool = False,
                   impute_hint: bool = True) -> np.ndarray:
    """One feature as float64 (N,), or an InputError naming the first bad cell. empty_ok: an empty cell is NaN
    (to be imputed) instead of an error; impute_hint: that error suggests --impute (not for a table that takes
    none: a multi-label one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(name)
    if pa.types.is_dictionary(col.type):
        col = pc.cast(col, col.type.value_type)
    if col.null_count and not empty_ok:
        i = first_index(np.asarray(pc.is_null(col)))
        hint = " (or train with --impute median to fill empty cells with the training median)" if impute_hint else ""
        raise _error(f"{where}: column {name!r} {rows(i)}: empty cell; expected a number in every row{hint}")
    if pa.types.is_boolean(col.type):
        raise _error(f"{where}: column {name!r} holds true/false values: expected numbers (encode it as 0/1)")
    if not is_numeric_type(col.type):
        try:
            col = pc.cast(col, pa.float64())
        except (pa.ArrowException, ValueError):
            i = first_uncastable(col)
            value = col[i].as_py()
            raise _error(
                f"{where}: column {name!r} {rows(i)}: non-numeric value {_show(value)}; expected numbers "
                "(leave the column out of the features to ignore it)"
            ) from None
    return np.asarray(pc.fill_null(pc.cast(col, pa.float64()), float("nan")), dtype=np.float64)


def features_matrix(table: Any, names: list[str], where: str, rows: RowNames, empty_ok: bool = False,
                    vocabs: Sequence[tuple[str, ...] | None] = (), impute_hint: bool = True) -> np.ndarray:
    """(N, F) float32, finite; empty_ok: empty cells (and NaN) are NaN, to be imputed. vocabs: per feature, its
    categories (the column's values become their indices) or None. impute_hint: as feature_column's."""
    x = np.empty((table.num_rows, len(names)), dtype=np.float32)  # (N, F)
    for j, name in enumerate(names):
        vocab = vocabs[j] if vocabs else None
        if vocab is not None:
            x[:, j] = category_codes(table, name, vocab, where, rows)
            continue
        x64 = feature_column(table, name, where, rows, empty_ok, impute_hint)  # (N,)
        with np.errstate(over="ignore", under="ignore"):  # a subnormal float64 becomes 0 or a float32 subnormal
            x[:, j] = x64
        bad = ~np.isfinite(x[:, j]) & ~(empty_ok & np.isnan(x64))
        if bad.any():
            i = first_index(bad)
            what = "NaN" if np.isnan(x64[i]) else ("infinite" if np.isinf(x64[i]) else "beyond float32's range")
            raise _error(f"{where}: column {name!r} {rows(i)}: value {float(x64[i])!r} is {what}; expected finite numbers")
    return x


# ---------------------------------------------------------------------------------------------- labels


def label_values(table: Any, label: str, where: str, rows: RowNames) -> Any:
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
        raise _error(f"{where}: label column {label!r} {rows(first_index(empty))}: empty label; every row needs its class")
    text = pa.types.is_string(t) or pa.types.is_large_string(t)
    if not (text or pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        raise _error(f"{where}: label column {label!r} has type {t}: expected strings or integers")
    if pa.types.is_floating(t):
        col = _integral_labels(col, label, where, rows)
    return col


def _as_text(col: Any, label: str, where: str, rows: RowNames) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(col, pa.string())
    except (pa.ArrowException, ValueError):
        i = first_uncastable(col, pa.string())
        raise _error(
            f"{where}: label column {label!r} {rows(i)}: {_show(col[i].as_py())} is not UTF-8 text; save the file as UTF-8"
        ) from None


def _integral_labels(col: Any, label: str, where: str, rows: RowNames) -> Any:
    import pyarrow as pa

    v = np.asarray(col, dtype=np.float64)  # (N,)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(v) | (v != np.floor(v)) | (np.abs(v) > 2.0**53)
    if bad.any():
        i = first_index(bad)
        raise _error(
            f"{where}: label column {label!r} {rows(i)}: value {float(v[i])!r} is not a whole number; class labels must be "
            "strings or integers (a float target is a regression problem, which this tool does not train)"
        )
    return pa.chunked_array([pa.array(v.astype(np.int64))])


def encode_labels(col: Any, label: str, where: str) -> tuple[np.ndarray, tuple[str, ...], list[Any]]:
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


def check_classes(y: np.ndarray, classes: tuple[str, ...], label: str, where: str, rows: RowNames) -> None:
    """A training table: two classes at least, and two rows of each so that a stratified split exists."""
    check_counts(np.bincount(y, minlength=len(classes)), classes, label, where, lambda c: rows(first_index(y == c)))


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


# ---------------------------------------------------------------------------------------------- multi-label

TRUE_TEXT, FALSE_TEXT = ("1", "true", "yes"), ("0", "false", "no")


def indicator_values(table: Any, label: str, where: str, rows: RowNames) -> np.ndarray:
    """A multi-label table's label column as (N,) float32 0/1: 0/1 numbers, booleans, or the words true/false and
    yes/no (any case); anything else (an empty cell too) is refused, naming its row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(label)
    if pa.types.is_dictionary(col.type):
        col = pc.cast(col, col.type.value_type)
    values = col.to_pylist()
    out = np.empty(len(values), np.float32)  # (N,)
    for i, v in enumerate(values):
        flag = _indicator(v)
        if flag is None:
            what = "empty cell" if v is None or (isinstance(v, str) and not v.strip()) else f"value {_label_cell(v)}"
            raise _error(f"{where}: label column {label!r} {rows(i)}: {what}: expected 0/1, true/false or "
                         f"yes/no (each label column says whether the row has that label)")
        out[i] = flag
    return out


def _label_cell(v: Any) -> str:
    """A refused label cell as the message shows it: a number read as text (a streamed CSV's label columns are)
    shown as the number, as the in-memory reader, which reads it as a number, shows it."""
    if isinstance(v, str):
        try:
            n = float(v)
        except ValueError:
            return _show(v)
        return str(int(n)) if n.is_integer() and "." not in v and "e" not in v.lower() else v.strip()
    return _show(v)


def _indicator(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and v in (0, 1):
        return float(v)
    if isinstance(v, str):
        t = v.strip().lower()
        return 1.0 if t in TRUE_TEXT else 0.0 if t in FALSE_TEXT else _number_text(t)
    return None


def _number_text(t: str) -> float | None:
    """A label cell read as text (a streamed CSV's label columns are) that is the number 0 or 1 written another way
    ("1.0", "0.0"): what the in-memory reader, which reads such a column as numbers, accepts."""
    try:
        v = float(t)
    except ValueError:
        return None
    return v if v in (0.0, 1.0) else None
