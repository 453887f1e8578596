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
from typing import IO, Iterator, Sequence

import numpy as np

from edgeclf.runtime import Classifier
from edgeclf.runtime.errors import InputError, first_line
from edgeclf.scale.core import LABEL, Model, ScoreReport, empty_feature, where
from edgeclf.scale.paths import STDIN, expand, output_kind, publish, temp_beside

SMALL_BYTES = 1 << 20  # = the smallest block of the streaming CSV reader (edgeclf.scale.sources.open_stream)
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
    found = expand([inputs] if isinstance(inputs, str) else inputs)
    parsed = [_read(path, kind, stdin, clf.features, keep) for path, kind in found]  # every input read first
    model = Model(clf, proba, keep)  # after the headers, as score_files checks them: the same first error
    quote = any(k not in model.features for k in keep) or any(ch in c for c in model.classes for ch in ',"\r\n')
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow([*keep, LABEL, *model.proba_names])
    if output is None:
        rows, oor = _write(parsed, model, quote, header.getvalue(), stdout or sys.stdout.buffer)
    else:
        target, tmp = Path(output), temp_beside(Path(output))
        try:
            with open(tmp, "wb") as f:
                rows, oor = _write(parsed, model, quote, header.getvalue(), f)
            publish(tmp, target, overwrite)
        finally:
            tmp.unlink(missing_ok=True)  # after an error (or an interrupt): no partial file
    return ScoreReport(rows, oor, time.perf_counter() - t0, len(parsed), output)


def _write(parsed: list[_Parsed], model: Model, quote: bool, header: str, sink: IO[bytes]) -> tuple[int, int]:
    sink.write(header.encode())
    classes = [_text(c, quote) for c in model.classes]
    rows = oor = 0
    for src in parsed:
        if src.missing.any():
            j = int(np.flatnonzero(src.missing.any(axis=0))[0])  # the first feature with a gap, as pyarrow's path
            raise empty_feature(src.path, "csv", int(np.flatnonzero(src.missing[:, j])[0]), model.features[j])
        if not len(src.x):
            continue  # a header and no rows: pyarrow's reader yields no batch
        p, idx, outside = model.score(src.x, src.path, "csv", 0)
        cols = [*src.kept, [classes[i] for i in idx.tolist()]]
        if model.proba_names:
            cols += [float_texts(c) for c in p.T]
        sink.write("".join(",".join(r) + "\n" for r in zip(*cols)).encode())
        rows, oor = rows + len(idx), oor + outside
    sink.flush()
    return rows, oor


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
    header, rows = _rows(path, data)
    wanted = list(dict.fromkeys([*keep, *features]))  # = edgeclf.scale.sources.wanted_columns
    where_in = {}
    for name in wanted:
        if name not in header:
            raise InputError(f"{path}: Column '{name}' in include_columns does not exist in CSV file: expected a "
                             f"header line naming the columns {[*features, *keep]} (any order, extra columns ignored)")
        where_in[name] = header.index(name)  # the first of equal names, as pyarrow
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise InputError(first_line(f"{where(path, 'csv', i)}: CSV parse error: Expected {len(header)} columns, "
                                        f"got {len(row)}: {_excerpt(row)}"))
    numbers = {f: _floats(path, where_in[f], [r[where_in[f]] for r in rows]) for f in wanted if f in features}
    x = np.column_stack([numbers[f][0] for f in features]).reshape(len(rows), len(features))  # (N, F)
    missing = np.column_stack([numbers[f][1] for f in features]).reshape(x.shape)  # (N, F)
    quote = any(k not in features for k in keep)
    kept = [float_texts(numbers[k][0]) if k in features else [_text(r[where_in[k]], quote) for r in rows]
            for k in keep]
    return _Parsed(path, np.ascontiguousarray(x, np.float32), missing, kept)


def _rows(path: str, data: bytes) -> tuple[list[str], list[list[str]]]:
    """The header and the rows; blank lines skipped (as pyarrow does). Each row keeps its raw text for messages."""
    try:
        text = data.decode("utf-8-sig")  # pyarrow skips a UTF-8 byte-order mark too
    except UnicodeDecodeError:
        raise Unsupported(f"{path}: not UTF-8") from None
    lines = _Lines(text)
    found: list[list[str]] = []
    try:
        for row in csv.reader(lines, strict=False):
            raw = lines.take()
            if row:
                found.append(_Row(row, raw))
    except csv.Error:
        raise Unsupported(f"{path}: the csv module refuses a field") from None
    if not found:  # no header: pyarrow's own message says which kind of empty
        raise Unsupported(f"{path}: no header")
    return list(found[0]), found[1:]


class _Row(list[str]):
    """A parsed row that remembers its text as read (pyarrow quotes it in a wrong-field-count message)."""

    def __init__(self, fields: list[str], raw: str) -> None:
        super().__init__(fields)
        self.raw = raw


def _excerpt(row: list[str]) -> str:
    raw = row.raw if isinstance(row, _Row) else ",".join(row)
    raw = raw[:-2] if raw.endswith("\r\n") else raw[:-1] if raw.endswith(("\r", "\n")) else raw
    b = raw.encode()
    return raw if len(b) <= 100 else (b[:96] + b" ...").decode(errors="replace")  # pyarrow shows 96 bytes of more


class _Lines:
    """The text's lines, ends kept ('\\n', '\\r\\n' or '\\r', as pyarrow splits them), recording what was taken."""

    def __init__(self, text: str) -> None:
        self._it: Iterator[str] = iter(io.StringIO(text, newline=""))
        self._taken: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._it)
        self._taken.append(line)
        return line

    def take(self) -> str:
        raw, self._taken = "".join(self._taken), []
        return raw


def _floats(path: str, column: int, values: list[str]) -> tuple[np.ndarray, np.ndarray]:
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
            raise InputError(first_line(f"{where(path, 'csv', i)}: In CSV column #{column}: CSV conversion error to "
                                        f"float: invalid value '{t}'"))
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
