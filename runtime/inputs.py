"""Turn whatever the caller passes (arrays, lists, DataFrames) into a checked (N, F) float32 matrix."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from edgeclf.runtime.errors import InputError

_F32_MAX = float(np.finfo(np.float32).max)
# the finiteness check's weights: every value times 2^-64, summed by BLAS over chunks of _CHUNK values. Finite
# float32 values give products <= 1.9e19 and chunk sums <= 2.5e24, so the sum cannot overflow (x.x would, from
# |x| ~ 1e15 on big arrays); the products underflow only for |x| < 2^-62, and numpy ignores underflow by default.
# Made on first use (1 MB of float32 weights, 2 MB of float64); smaller chunks run slower.
_CHUNK = 1 << 18
_DOT_DTYPES = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
_WEIGHTS: dict[np.dtype[Any], np.ndarray] = {}


def _row_list(idx: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:limit])
    return shown + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def _from_frame(frame: Any, features: Sequence[str]) -> np.ndarray:
    """A DataFrame (duck-typed: .columns + .to_numpy): columns matched by name, in any order, extra ones ignored.
    A frame whose columns name no feature at all (0, 1, ...) is taken by position."""
    cols = [str(c) for c in frame.columns]
    if any(c in features for c in cols):
        missing = [f for f in features if f not in cols]
        if missing:
            raise InputError(f"DataFrame has no column {missing[0]!r}: expected the features {list(features)} "
                             f"(got columns {cols})")
        if len(set(cols)) != len(cols):
            dup = next(c for c in cols if cols.count(c) > 1)
            raise InputError(f"DataFrame has column {dup!r} twice: expected one column per feature")
        frame = frame[list(features)]
        cols = list(features)
    for name, dtype in zip(cols, frame.dtypes):
        if getattr(dtype, "kind", "O") not in "fiu":
            raise InputError(f"DataFrame column {name!r} has dtype {dtype}: expected numbers (float or int)")
    return np.asarray(frame.to_numpy())


KEEP_NONFINITE = " (pass allow_nonfinite=True to keep them)"  # the Python API's way out; Classifier.check leaves it out


def as_matrix(x: Any, features: Sequence[str], allow_nonfinite: bool = False,
              imputed: Sequence[bool] = (), way_out: str = KEEP_NONFINITE) -> np.ndarray:
    """A checked (N, F) real array; a single row (F,) becomes (1, F). Raises InputError on anything else.
    imputed: per feature, whether the model fills NaN there (manifest fill): NaN passes in those columns only.
    way_out: what the NaN message ends with (the Python API's allow_nonfinite; "" where a caller cannot pass it).

    Not converted: float32 C-contiguous input comes back as is, anything else is cast chunk by chunk by the
    caller (as_float32_rows), so a 10-million-row float64 input is never copied whole.
    """
    n_feat = len(features)
    if type(x) is np.ndarray and x.ndim == 2 and x.dtype == np.float32 and x.shape[1] == n_feat:
        arr = x  # the hot path: nothing to convert
    else:
        arr = _to_array(x, features)
    if arr.dtype.kind == "f":
        if arr.dtype.itemsize > 4:
            _check_fits_float32(arr)
        if not allow_nonfinite:
            _check_finite(arr, features, imputed, way_out)
    return arr


def as_float32_rows(rows: np.ndarray) -> np.ndarray:
    return rows if rows.dtype == np.float32 and rows.flags.c_contiguous else np.ascontiguousarray(rows, np.float32)


def _to_array(x: Any, features: Sequence[str]) -> np.ndarray:
    n_feat = len(features)
    if hasattr(x, "columns") and hasattr(x, "to_numpy"):
        arr = _from_frame(x, features)
    else:
        try:
            arr = np.asarray(x)
        except ValueError as e:  # numpy refuses ragged nested lists
            raise InputError(f"input is not a rectangular array ({e}): expected rows of {n_feat} numbers") from None
    if arr.dtype.kind not in "fiu":
        what = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes", "O": "objects"}
        raise InputError(
            f"input has dtype {arr.dtype} ({what.get(arr.dtype.kind, 'non-numeric')}): expected real numbers"
        )
    if arr.ndim == 1 and arr.shape[0] == n_feat:
        arr = arr.reshape(1, n_feat)
    if arr.ndim != 2 or arr.shape[1] != n_feat:
        raise InputError(
            f"input has shape {arr.shape}: expected (N, {n_feat}) rows of {n_feat} features "
            f"({', '.join(features)}) or a single row ({n_feat},)"
        )
    return arr


def _check_fits_float32(arr: np.ndarray) -> None:
    if not arr.size:
        return
    if arr.size <= SMALL_CHECK and all(-_F32_MAX <= v <= _F32_MAX for v in arr.ravel().tolist()):
        return  # a few values: Python compares them faster than numpy's reductions start (NaN goes on below)
    with np.errstate(invalid="ignore"):
        hi, lo = arr.max(), arr.min()  # reductions: no N-sized temporaries on the good path
    if np.isfinite(hi) and np.isfinite(lo) and max(hi, -lo) <= _F32_MAX:
        return
    with np.errstate(invalid="ignore"):
        too_big = np.isfinite(arr) & (np.abs(arr) > _F32_MAX)
    if too_big.any():
        rows = np.unique(np.nonzero(too_big)[0])
        value = arr[too_big][0]
        raise InputError(f"value {value!r} in row(s) {_row_list(rows)} does not fit float32 (max {_F32_MAX:.3e})")


SMALL_CHECK = 32  # values: up to this, a Python pass (_check_finite's sum, _check_fits_float32's comparisons)
MEDIUM_CHECK = 1 << 20  # values: up to this, np.isfinite (a bool temporary of at most 1 MB)


def _check_finite(arr: np.ndarray, features: Sequence[str], imputed: Sequence[bool] = (),
                  way_out: str = KEEP_NONFINITE) -> None:
    """A fast test of the whole array, then the row scan only when it fails.
    - A few values are summed in Python: a numpy call costs more than that here.
    - Contiguous native float32/float64 (C or Fortran order: a DataFrame's values): the dot product of the values
      with a constant 2^-64 (BLAS, one pass, no temporary; as fast as np.isfinite or up to 1.4x faster here, and
      it slows the next onnxruntime run less). NaN or inf exactly when a value is (inf times a positive weight
      stays inf; inf - inf and NaN give NaN), never by overflow (see _CHUNK). Where numpy is set to raise on
      underflow (tiny values), the row scan decides instead.
    - Anything else: np.isfinite up to a million values, above one float64 sum (no N-sized temporary)."""
    if arr.size <= SMALL_CHECK:
        ok = math.isfinite(sum(arr.ravel().tolist()))
    elif (arr.flags.c_contiguous or arr.flags.f_contiguous) and arr.dtype in _DOT_DTYPES:
        ok = _dot_finite(arr.ravel(order="K"))  # a view in memory order: no copy
    elif arr.size <= MEDIUM_CHECK:
        ok = bool(np.isfinite(arr).all())
    else:
        ok = math.isfinite(arr.sum(dtype=np.float64))
    if not ok:
        bad = ~np.isfinite(arr)
        if any(imputed):
            bad &= ~(np.isnan(arr) & np.asarray(imputed, dtype=bool))  # (N, F): NaN the model fills is fine
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            j = int(np.nonzero(bad[rows[0]])[0][0])
            filled = [f for f, m in zip(features, imputed) if m]
            why = (f" (the model fills NaN in {filled} only)" if filled else "")
            raise InputError(
                f"NaN or inf in row(s) {_row_list(rows)} (first in row {int(rows[0])}, column {features[j]!r}): "
                f"expected finite numbers{why}{way_out}",
                row=int(rows[0]), column=features[j],
            )


def _dot_finite(flat: np.ndarray) -> bool:
    """Whether the 2^-64-weighted sum of the values is finite: one BLAS dot per chunk of _CHUNK values."""
    weights = _WEIGHTS.get(flat.dtype)
    if weights is None:  # setdefault: two threads racing here keep one array
        weights = _WEIGHTS.setdefault(flat.dtype, np.full(_CHUNK, 2.0 ** -64, flat.dtype))
    try:
        if flat.size <= _CHUNK:
            return math.isfinite(np.dot(flat, weights[: flat.size]))
        total = 0.0
        for i in range(0, flat.size, _CHUNK):
            part = flat[i: i + _CHUNK]
            total += float(np.dot(part, weights[: part.size]))
        return math.isfinite(total)
    except (FloatingPointError, RuntimeWarning):  # numpy set to raise (or warnings to error) on underflow
        return False


def out_of_range(arr: np.ndarray, low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray) -> np.ndarray:
    """(N,) bool: rows with any feature outside the training range [low, high]."""
    with np.errstate(invalid="ignore"):
        return np.asarray(((arr < np.asarray(low)) | (arr > np.asarray(high))).any(axis=1))
