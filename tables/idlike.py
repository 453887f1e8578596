"""Which columns identify rows instead of describing them (an id, a key, a row number): such a column is never a
feature by default. A model given one learns the row order of its training file, and on new rows every id is
outside the training range, so its predictions collapse to one class; nothing in the scores says why."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

ID_WORDS = frozenset({"id", "ids", "key", "uuid", "guid", "index", "idx"})
MIN_ROWS_UNIQUE = 10  # fewer rows than this: all-distinct values say nothing (a file's schema alone has none)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")  # "userID" -> user, ID; "row_index" -> row, index


def named_like_id(name: str) -> bool:
    """A word of the name is id/key/uuid/index (any case): "id", "user_id", "RowIndex", "customerKey"."""
    return any(w.lower() in ID_WORDS for w in _WORDS.findall(name))


def unique_per_row(table: Any, name: str) -> bool:
    """A text column whose every row holds a value no other row holds (no empty cell), or an integer column whose
    values increase down the file (a row number or an auto-increment key). An integer feature of a small table
    (a count, a price in cents) is often all-distinct too: only the order tells a counter from a measurement."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    col = table.column(name)
    if pa.types.is_dictionary(col.type):
        col = pc.cast(col, col.type.value_type)
    t = col.type
    if n < MIN_ROWS_UNIQUE or col.null_count:
        return False
    if pa.types.is_integer(t):
        v = np.asarray(col, dtype=np.int64)  # (N,)
        return bool((np.diff(v) > 0).all())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return bool(pc.count_distinct(col).as_py() == n)
    return False


def id_like(table: Any, names: list[str]) -> dict[str, str]:
    """{column: why it looks like an id} for the given columns, in their order."""
    import pyarrow as pa

    found: dict[str, str] = {}
    for name in names:
        if named_like_id(name):
            found[name] = "named like an id"
        elif unique_per_row(table, name):
            integer = pa.types.is_integer(table.schema.field(name).type)
            found[name] = "integers increasing row by row" if integer else "a distinct value in every row"
    return found


def id_note(found: dict[str, str], where: str) -> str:
    shown = ", ".join(f"{n!r} ({why})" for n, why in found.items())
    return (f"{where}: id-like columns left out of the features: {shown}; "
            "name them in the features (--features) to use them")
