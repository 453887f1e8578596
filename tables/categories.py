"""Text columns with few distinct values are categories: each value is its index in the column's vocabulary
(the sorted distinct values), a float32 like any feature; the exported model one-hots it. More values than
MAX_CATEGORIES: free text or an identifier, never a feature by default."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from edgeclf.runtime.errors import UnseenCategory
from edgeclf.tables.messages import is_number
from edgeclf.tables.messages import one_line as _error

MAX_CATEGORIES = 32


def is_text_type(t: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _text(col: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(col, col.type.value_type) if pa.types.is_dictionary(col.type) else col


def distinct_values(table: Any, name: str) -> list[str]:
    """The column's distinct non-empty values, sorted by code point."""
    import pyarrow.compute as pc

    return sorted(v for v in pc.unique(_text(table.column(name))).to_pylist() if v is not None)


def text_kind(table: Any, name: str) -> str:
    """What a text column is: "category" (2 to MAX_CATEGORIES distinct values, mostly not numbers), "many" (more
    values: free text or an identifier), "numbers" (mostly numbers: a numeric column with bad cells, whose error
    names the first one) or "single" (one value: no information, and more likely a typo'd numeric column)."""
    return values_kind(distinct_values(table, name))


def values_kind(values: Sequence[str], more: bool = False) -> str:
    """text_kind's rule on a column's distinct values; more: the column holds more values than these (a file read
    in batches keeps MAX_CATEGORIES + 1 of them, tables/textscan.py)."""
    if sum(is_number(v) for v in values) * 2 >= max(len(values), 1):
        return "numbers"
    if len(values) < 2:
        return "single"
    return "category" if len(values) <= MAX_CATEGORIES and not more else "many"


def vocabulary(table: Any, name: str, where: str) -> tuple[str, ...] | None:
    """A category column's vocabulary; None when the column is to be read as numbers (its error names the bad
    cell); an InputError when it has too many values to be a category."""
    kind = text_kind(table, name)
    if kind == "many":
        raise too_many(where, name, str(len(distinct_values(table, name))))
    return tuple(distinct_values(table, name)) if kind == "category" else None


def too_many(where: str, name: str, count: str) -> Exception:
    """A named feature whose text has too many values to be a category (count: how many, as far as known)."""
    return _error(f"{where}: column {name!r} holds {count} distinct text values: a category has at most "
                  f"{MAX_CATEGORIES} (this is free text or an identifier); leave it out of the features", column=name)


def category_codes(table: Any, name: str, vocab: Sequence[str], where: str, rows: Any) -> np.ndarray:
    """(N,) float32 indices into vocab; an empty cell or a value outside vocab is an InputError naming it."""
    return codes(table.column(name), name, vocab, lambda i: f"{where}: {rows(i)}")


def codes(col: Any, name: str, vocab: Sequence[str], at: Callable[[int], str], indices: bool = False) -> np.ndarray:
    """A category column's text (a pyarrow array, dictionary-encoded or not) as (N,) float32 indices into vocab;
    an empty cell or a value outside vocab is an UnseenCategory at(row) names. indices: the caller takes indices
    too (said in the error)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = _text(col)
    idx = pc.index_in(col, value_set=pa.array(list(vocab), type=pa.string()))
    if idx.null_count:  # an empty cell, or a value outside vocab
        i = int(np.flatnonzero(np.asarray(pc.is_null(idx)))[0])
        raise UnseenCategory(at(i), name, col[i].as_py(), vocab, indices=indices)
    return np.asarray(idx, dtype=np.float32)
