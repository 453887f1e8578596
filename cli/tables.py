"""Input and output for `edgeclf predict`: CSV / .npy / stdin in, CSV / JSON / JSONL out. numpy only."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Sequence

import numpy as np

from edgeclf.runtime.errors import InputError

DELIMITERS = ",;\t"


def read_input(source: str | None, features: Sequence[str]) -> np.ndarray:
    """Rows of features from a CSV path, a .npy path, or stdin ('-' or None); a CSV header is optional."""
    if source in (None, "-"):
        data = sys.stdin.buffer.read()
        return parse_csv(data, features, "<stdin>")
    path = Path(source)
    if not path.is_file():
        raise InputError(f"input file {source!r} does not exist: expected a CSV or .npy file, or '-' for stdin")
    if path.suffix == ".npy":
        try:
            return np.asarray(np.load(path, allow_pickle=False))
        except (ValueError, OSError) as e:
            raise InputError(f"{source} is not a readable .npy array ({e})") from None
    return parse_csv(path.read_bytes(), features, source)


def _decode(data: bytes, where: str) -> str:
    if b"\x00" in data[:4096]:
        raise InputError(f"{where} looks like a binary file, not a CSV: expected text rows like 0.5,-1.2")
    try:
        return data.decode("utf-8-sig")  # a BOM is dropped
    except UnicodeDecodeError as e:
        raise InputError(f"{where} is not UTF-8 text (byte {e.start}): expected a CSV of numbers") from None


def parse_csv(data: bytes, features: Sequence[str], where: str) -> np.ndarray:
    text = _decode(data, where)
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]  # blank lines skipped
    if not lines:
        return np.zeros((0, len(features)), np.float32)
    first = lines[0][1]
    delim = max(DELIMITERS, key=first.count) if any(d in first for d in DELIMITERS) else ","
    rows = list(csv.reader([ln for _, ln in lines], delimiter=delim))
    header = [c.strip() for c in rows[0]]
    if not _numeric(header):
        if header != list(features):
            raise InputError(f"{where} line {lines[0][0]}: header {header} does not match the features {list(features)}")
        lines, rows = lines[1:], rows[1:]
    out = np.empty((len(rows), len(features)), np.float64)
    for (lineno, _), row, dst in zip(lines, rows, out):
        if len(row) != len(features):
            raise InputError(f"{where} line {lineno}: {len(row)} values, expected {len(features)} ({', '.join(features)})")
        try:
            dst[:] = [float(v) for v in row]
        except ValueError:
            raise InputError(f"{where} line {lineno}: {delim.join(row)!r} is not {len(features)} numbers") from None
    return out


def _numeric(cells: Sequence[str]) -> bool:
    try:
        [float(c) for c in cells]
    except ValueError:
        return False
    return True


def format_rows(labels: np.ndarray, proba: np.ndarray | None, classes: Sequence[str], fmt: str) -> str:
    """Predictions in input order: a label per row and, with proba, one column per class."""
    buf = io.StringIO()
    if fmt == "csv":
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["label"] + ([f"proba_{c}" for c in classes] if proba is not None else []))
        for i, label in enumerate(labels):
            w.writerow([label] + ([f"{v:.9g}" for v in proba[i]] if proba is not None else []))
        return buf.getvalue()
    records = []
    for i, label in enumerate(labels):
        rec: dict[str, object] = {"label": str(label)}
        if proba is not None:
            rec["probabilities"] = {c: float(f"{v:.9g}") for c, v in zip(classes, proba[i])}
        records.append(rec)
    if fmt == "json":
        return json.dumps(records, indent=2) + "\n"
    return "".join(json.dumps(r) + "\n" for r in records)


def write_output(text: str, output: str | None, stream: IO[str]) -> None:
    """To stdout, or atomically to a file (temp + rename: a failed run never leaves half a file)."""
    if output in (None, "-"):
        stream.write(text)
        return
    target = Path(output)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    except OSError as e:
        raise InputError(f"cannot write {output}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
