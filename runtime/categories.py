"""Category columns on the way in: a model trained with a text column of few values takes the value's index in
that column's vocabulary (manifest features[].categories) as a float; the graph one-hots it. Callers may pass the
text (a DataFrame column, or rows of Python values) or the index; anything else is an InputError naming the
value, the column and the vocabulary (the graph itself would give an unseen value an all-zero code, silently)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edgeclf.runtime.errors import InputError, UnseenCategory

Vocabs = Sequence["tuple[str, ...] | None"]


def encode(x: Any, features: Sequence[str], vocabs: Vocabs) -> Any:
    """x with its category columns as float indices (an (N, F) float64 array), or x itself when it is numeric
    already (its indices are then checked)."""
    if hasattr(x, "columns") and hasattr(x, "to_numpy"):
        return _frame(x, features, vocabs)
    arr = x if isinstance(x, np.ndarray) else _rows(x)
    if arr.dtype.kind in "fiu":
        check_indices(arr, features, vocabs)
        return arr
    if arr.dtype.kind not in "OU" or arr.ndim not in (1, 2):
        return arr  # the shape and dtype checks that follow name the problem
    two = arr.reshape(1, -1) if arr.ndim == 1 else arr
    if two.shape[1] != len(features):
        return arr
    out = np.empty(two.shape, np.float64)  # (N, F)
    for j, name in enumerate(features):
        out[:, j] = _column(two[:, j], name, vocabs[j])
    return out


def _rows(x: Any) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except ValueError:
        return np.asarray(x, dtype=object)  # ragged: the shape check names it
    return arr


def _frame(frame: Any, features: Sequence[str], vocabs: Vocabs) -> Any:
    cols = [str(c) for c in frame.columns]
    if any(f not in cols for f in features):
        return frame  # by position or with a missing column: the frame reader names the problem
    out = np.empty((len(frame), len(features)), np.float64)  # (N, F)
    for j, name in enumerate(features):
        out[:, j] = _column(frame[name].to_numpy(), name, vocabs[j])
    return out


def _column(values: np.ndarray, name: str, vocab: tuple[str, ...] | None) -> np.ndarray:
    """(N,) float64: a number column as numbers, a category column's text or indices as indices."""
    if vocab is None:
        try:
            return np.asarray(values, np.float64)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float64 (10**400)
            bad = next((v for v in values.tolist() if not _is_float64(v)), values.tolist()[0])
            raise InputError(f"column {name!r}: value {str(bad)[:40]!r} is not a number that fits float64") from None
    lookup = {v: float(i) for i, v in enumerate(vocab)}
    out = np.empty(len(values), np.float64)
    for i, v in enumerate(values.tolist()):
        code = lookup.get(v) if isinstance(v, str) else _index(v, len(vocab))
        if code is None:
            raise unseen(v, name, vocab, i)
        out[i] = code
    return out


def _is_float64(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError, OverflowError):
        return False
    return isinstance(v, (int, float, np.integer, np.floating))


def _index(v: Any, k: int) -> float | None:
    if isinstance(v, bool) or not _is_float64(v):
        return None
    f = float(v)
    return f if f.is_integer() and 0 <= f < k else None


def check_indices(arr: np.ndarray, features: Sequence[str], vocabs: Vocabs) -> None:
    """Numeric input: each category column holds whole indices into its vocabulary."""
    two = arr.reshape(1, -1) if arr.ndim == 1 else arr
    if two.ndim != 2 or two.shape[1] != len(features):
        return
    for j, vocab in enumerate(vocabs):
        if vocab is None:
            continue
        col = two[:, j]
        with np.errstate(invalid="ignore"):
            bad = ~((col >= 0) & (col < len(vocab)) & (col == np.floor(col)))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise unseen(col[i].item(), features[j], vocab, i)


def unseen(value: Any, name: str, vocab: Sequence[str], row: int) -> UnseenCategory:
    return UnseenCategory(f"row {row}", name, value, vocab, indices=True, row=row)
