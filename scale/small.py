"""Small CSV inputs scored without pyarrow: Python's csv module and numpy read them, the same onnxruntime session
scores them, and the output is written byte for byte as pyarrow's CSV writer writes it. Importing pyarrow costs
~0.3 s and ~50 MB, more than reading and scoring a few thousand rows, so `edgeclf predict` takes this path for CSV
in and CSV out up to SMALL_BYTES of input (one block of pyarrow's reader, which then reads the input as one batch,
as this path does: checks run in the same order and give the same messages).

    from edgeclf.scale.small import score_small
    score_small("artifacts/circles", ["points.csv"], None, proba=True)      # CSV on stdout
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

import numpy as np

from edgeclf.runtime import Classifier
from edgeclf.runtime.errors import InputError
from edgeclf.scale.core import Scorer, ScoreReport
from edgeclf.scale.paths import STDIN, expand, output_kind
from edgeclf.tables.kinds import check_text
from edgeclf.tables.messages import bad_cell_count, check_columns, empty_feature, not_a_number, position

SMALL_BYTES = 1 << 20  # = the smallest block of the streaming CSV reader (edgeclf.tables.sources.open_stream)
# pyarrow.csv.ConvertOptions().null_values: these read as missing (then "feature is empty"), compared untrimmed
NULLS = frozenset(["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "N/A",
                   "NA", "NULL", "NaN", "n/a", "nan", "null"])
# the numbers pyarrow's float parser (fast_float) accepts once spaces and tabs are trimmed
_NUMBER = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(inf(?:inity)?)|(nan(?:\([0-9a-z_]*\))?))",
                     re.ASCII | re.IGNORECASE)
_PLAIN = re.compile(r"(?:[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\n)*", re.ASCII)  # a column, one a line


class Unsupported(Exception):
    """The input holds something this path does not read exactly as pyarrow does (bytes that are not UTF-8, a
    field the csv module refuses): the caller hands it to the streaming path."""


@dataclass(frozen=True)
class _Parsed:
    """One input, read and converted: features (N, F) float32 with their missing values, kept columns as text."""

    path: str
    x: np.ndarray  # (N, F) float32
    missing: np.ndarray  # (N, F) bool
    kept: list[list[str]]  # one list of N output texts per kept column


def score_small(artifact: str | os.PathLike[str], inputs: str | Sequence[str], output: str | None = None, *,
                proba: bool = False, keep: Sequence[str] = (), overwrite: bool = False,
                stdout: IO[bytes] | None = None, stdin: bytes | None = None) -> ScoreReport:
    """score_files for CSV in, CSV out (None = stdout), read whole: the same rows, bytes and errors. stdin: the
    bytes of '-' (read from the process's stdin when None)."""
    t0 = time.perf_counter()
    keep = tuple(keep)
    if output is not None and output_kind(output, overwrite) != "csv":
        raise InputError(f"output {output!r}: the small-input path writes CSV only")
    clf = Classifier.load(artifact)
    if clf.has_categories:
        raise Unsupported("category columns: pyarrow's reader maps their text")
    found = expand([inputs] if isinstance(inputs, str) else inputs)
    parsed = [_read(path, kind, stdin, clf.features, keep) for path, kind in found]  # every input read first
    scorer = Scorer(clf, proba, keep)  # after the headers, as score_files checks them: the same first error
    quote = any(k not in scorer.features for k in keep) or \
        (not scorer.multilabel and any(ch in c for c in scorer.classes for ch in ',"\r\n'))
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow([*keep, *scorer.decision_names, *scorer.proba_names])
    if output is None:
        rows, outside = _write(parsed, scorer, quote, header.getvalue(), stdout or sys.stdout.buffer)
    else:
        from edgeclf.artifact.store import published  # here: a predict to stdout never needs it (start-up)

        with published(Path(output), overwrite) as tmp, open(tmp, "wb") as f:
            rows, outside = _write(parsed, scorer, quote, header.getvalue(), f)
    return ScoreReport(rows, outside, time.perf_counter() - t0, len(parsed), output)


def _write(parsed: list[_Parsed], scorer: Scorer, quote: bool, header: str, sink: IO[bytes]) -> tuple[int, int]:
    sink.write(header.encode())
    classes = [_text(c, quote) for c in scorer.classes]
    rows = outside = 0
    for src in parsed:
        imputed = np.asarray(scorer.clf.imputed, bool)  # (F,) features whose empty cells the model fills
        src.x[src.missing & imputed] = np.nan
        gaps = src.missing & ~imputed  # (N, F)
        if gaps.any():
            j = int(np.flatnonzero(gaps.any(axis=0))[0])  # the first feature with a gap, as pyarrow's path
            row = int(np.flatnonzero(gaps[:, j])[0])
            raise empty_feature(position(src.path, "csv", row), scorer.features[j])
        if not len(src.x):
            continue  # a header and no rows: pyarrow's reader yields no batch
        p, idx, n_outside = scorer.score(src.x, src.path, "csv", 0)
        if scorer.multilabel:  # (B, L) 0/1: one column per label
            cols = [*src.kept, *(np.where(c, "1", "0").tolist() for c in idx.T)]
        else:
            cols = [*src.kept, [classes[i] for i in idx.tolist()]]
        if scorer.proba_names:
            cols += [float_texts(c) for c in p.T]
        sink.write("".join(",".join(r) + "\n" for r in zip(*cols)).encode())
        rows, outside = rows + len(idx), outside + n_outside
    sink.flush()
    return rows, outside


def _text(value: str, quote: bool) -> str:
    """A text value as pyarrow's CSV writer puts it: quoting_style 'needed' quotes every text value."""
    return '"' + value.replace('"', '""') + '"' if quote else value


def _read(path: str, kind: str, stdin: bytes | None, features: Sequence[str], keep: Sequence[str]) -> _Parsed:
    if kind != "csv":
        raise Unsupported(f"{path}: {kind}")
    if path == STDIN:
        data = sys.stdin.buffer.read() if stdin is None else stdin
    else:
        data = Path(path).read_bytes()
    check_text(data, path)
    header, rows = _header_and_rows(path, data)
    check_columns(path, header, features, keep)
    wanted = list(dict.fromkeys([*keep, *features]))  # = edgeclf.tables.sources.wanted_columns
    where_in = {name: header.index(name) for name in wanted}  # the first of equal names, as pyarrow
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise bad_cell_count(position(path, "csv", i), len(row), len(header))
    numbers = {f: _floats(path, f, [r[where_in[f]] for r in rows]) for f in wanted if f in features}
    x = np.column_stack([numbers[f][0] for f in features]).reshape(len(rows), len(features))  # (N, F)
    missing = np.column_stack([numbers[f][1] for f in features]).reshape(x.shape)  # (N, F)
    quote = any(k not in features for k in keep)
    kept = [float_texts(numbers[k][0]) if k in features else [_text(r[where_in[k]], quote) for r in rows]
            for k in keep]
    return _Parsed(path, np.ascontiguousarray(x, np.float32), missing, kept)


def _header_and_rows(path: str, data: bytes) -> tuple[list[str], list[list[str]]]:
    """The header and the rows; blank lines skipped (as pyarrow does)."""
    try:
        text = data.decode("utf-8-sig")  # pyarrow skips a UTF-8 byte-order mark too
    except UnicodeDecodeError:
        raise Unsupported(f"{path}: not UTF-8") from None
    found: list[list[str]] = []
    try:
        found = [row for row in csv.reader(io.StringIO(text, newline=""), strict=False) if row]
    except csv.Error:
        raise Unsupported(f"{path}: the csv module refuses a field") from None
    if not found:  # no header: pyarrow's own message says which kind of empty
        raise Unsupported(f"{path}: no header")
    return list(found[0]), found[1:]


def _floats(path: str, column: str, values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """float32 values and the missing ones, parsed as pyarrow parses a float32 column (nulls, trimming, grammar,
    correct rounding). A value that is not a number names its line and column."""
    if _PLAIN.fullmatch("".join(v + "\n" for v in values)):  # the common case: plain numbers, nothing missing
        return _float32(np.array([float(v) for v in values], np.float64), values), np.zeros(len(values), bool)
    d, missing = np.zeros(len(values), np.float64), np.zeros(len(values), bool)
    for i, v in enumerate(values):
        if v in NULLS:
            missing[i] = True
            continue
        t = v.strip(" \t")
        m = _NUMBER.fullmatch(t)
        if m is None:
            raise not_a_number(position(path, "csv", i), column, t)
        d[i] = float("nan") if m.group(2) else float(t)
    return _float32(d, values), missing


def _float32(d: np.ndarray, texts: list[str]) -> np.ndarray:
    """Round to float32 as a direct decimal -> float32 parse would. Through float64 the result differs only where
    the double lies exactly halfway between two float32 values while the decimal does not: decided exactly."""
    with np.errstate(over="ignore", under="ignore"):  # explicit: the caller's numpy may raise on either
        f = d.astype(np.float32)
    f64 = f.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        lo = np.nextafter(f, np.float32(-np.inf)).astype(np.float64)
        hi = np.nextafter(f, np.float32(np.inf)).astype(np.float64)
        for i in np.flatnonzero(np.isfinite(d) & ((d == (f64 + lo) / 2) | (d == (f64 + hi) / 2))).tolist():
            from fractions import Fraction  # rare: a long decimal next to a float32 tie

            exact, half = Fraction(texts[i].strip(" \t")), Fraction(float(d[i]))
            other = lo[i] if d[i] == (f64[i] + lo[i]) / 2 else hi[i]
            if exact != half:
                f[i] = max(f64[i], other) if exact > half else min(f64[i], other)
    return f


def float_texts(values: np.ndarray) -> list[str]:
    """float32 values as pyarrow's CSV writer writes them: the shortest digits that read back to the same float32,
    positional from 1e-6 to below 1e10, else d.ddde+X / d.ddde-X."""
    return [_arrow_float(s) for s in np.asarray(values, np.float32).astype(str).tolist()]


def _arrow_float(s: str) -> str:
    """From numpy's shortest repr of a float32 ('0.5', '1.0', '1.4692545e-05', '123456790.0', 'nan')."""
    mantissa, _, exp = s.partition("e")
    sign, mantissa = ("-", mantissa[1:]) if mantissa.startswith("-") else ("", mantissa)
    whole, _, frac = mantissa.partition(".")
    if not exp:
        if not whole.isdigit():  # inf, nan: written as such
            return s
        if len(whole) <= 10:  # below 1e10: numpy's positional form is pyarrow's, less a trailing '.0'
            return s[:-2] if s.endswith(".0") else s
    if exp:
        e, digits = int(exp), whole + frac
    else:  # 1e10 or more, positional in numpy's repr
        e, digits = len(whole) - 1, (whole + frac).rstrip("0") or "0"
    if -6 <= e <= 9:
        return sign + (f"0.{'0' * (-e - 1)}{digits}" if e < 0 else _point(digits, e))
    body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{body}e{'+' if e >= 0 else '-'}{abs(e)}"


def _point(digits: str, e: int) -> str:
    """Digits d.ddd x 10^e (0 <= e) written positionally."""
    return digits + "0" * (e + 1 - len(digits)) if len(digits) <= e + 1 else f"{digits[:e + 1]}.{digits[e + 1:]}"
