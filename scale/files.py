"""Streaming scoring of files of any size: read a batch, score it, write it, so memory stays bounded.

    from edgeclf.scale.files import score_files
    report = score_files("artifacts/circles", ["in/*.parquet"], "pred.parquet", proba=True, keep=["id"])
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edgeclf.runtime import Classifier
from edgeclf.runtime.errors import InputError
from edgeclf.scale.progress import Progress
from edgeclf.scale.sinks import Writer, output_kind, publish, temp_beside
from edgeclf.scale.sources import STDIN, Source, arrow_f32, arrow_strings, batches, describe, expand, numpy_of, open_stream

DEFAULT_BATCH_ROWS = 65536  # per-call costs vanish already; peak RSS grows with it (CSV: 180 MB at 32k, 240 at 131k)
LABEL = "label"


@dataclass(frozen=True)
class ScoreReport:
    rows: int
    out_of_range: int | None  # rows with a feature outside the training range (manifest features' min/max);
    # None where it was not counted (the dask engine)
    seconds: float
    parts: int  # input files (score_files) or partitions (score_dask)
    output: str | None  # None: stdout

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        oor = "" if self.out_of_range is None else f"; {self.out_of_range:,} row(s) outside the training range"
        return (f"scored {self.rows:,} rows from {self.parts} part(s) in {self.seconds:.2f} s "
                f"({self.rows_per_s / 1e6:.2f} M rows/s) -> {self.output or 'stdout'}{oor}")


def score_files(artifact: str | os.PathLike[str], inputs: str | Sequence[str], output: str | None = None, *,
                proba: bool = False, keep: Sequence[str] = (), batch_rows: int = DEFAULT_BATCH_ROWS,
                overwrite: bool = False, progress: bool = False, stdout: IO[bytes] | None = None) -> ScoreReport:
    """Score every row of INPUTS (paths or globs of .csv/.parquet/.jsonl/.npy, '-' = CSV on stdin) into OUTPUT
    (.csv/.parquet/.jsonl; None = CSV on stdout), in input order: kept columns, `label`, and with proba one
    `proba_<class>` column per class. Features are matched by name; memory does not grow with the input."""
    t0 = time.perf_counter()
    keep = tuple(keep)
    if batch_rows < 1:
        raise InputError(f"batch_rows {batch_rows}: expected a positive number of rows")
    kind = output_kind(output, overwrite) if output is not None else "csv"
    clf = Classifier.load(artifact)
    sources = _describe_all(expand([inputs] if isinstance(inputs, str) else inputs), clf.features, keep, batch_rows)
    scorer = _Scorer(clf, proba, keep, sources[0][0].schema)
    if output is None:
        writer = Writer("csv", stdout or sys.stdout.buffer, scorer.schema, scorer.quote)
        rows, oor = _run(sources, scorer, writer, batch_rows, progress)
        writer.close()
    else:
        rows, oor = _to_file(sources, scorer, kind, Path(output), batch_rows, progress, overwrite)
    return ScoreReport(rows, oor, time.perf_counter() - t0, len(sources), output)


def _describe_all(found: list[tuple[str, str]], features: Sequence[str], keep: Sequence[str],
                  batch_rows: int) -> list[tuple[Source, Any]]:
    """Every input's columns are checked before the first row is scored (a bad last file fails fast). Readers
    are closed again, except stdin's, which cannot be reopened."""
    out: list[tuple[Source, Any]] = []
    for path, kind in found:
        reader, handle = open_stream(path, kind, features, keep, batch_rows)
        out.append((describe(path, kind, reader, features, keep), (reader, handle) if path == STDIN else None))
        if path != STDIN and handle is not None:
            handle.close()
    return out


def _to_file(sources: list[tuple[Source, Any]], scorer: _Scorer, kind: str, target: Path, batch_rows: int,
             progress: bool, overwrite: bool) -> tuple[int, int]:
    tmp = temp_beside(target)
    try:
        writer = Writer(kind, str(tmp), scorer.schema, scorer.quote)
        try:
            rows, oor = _run(sources, scorer, writer, batch_rows, progress)
        finally:
            writer.close()
        publish(tmp, target, overwrite)
    finally:
        tmp.unlink(missing_ok=True)  # after an error (or an interrupt): no partial file
    return rows, oor


def _run(sources: list[tuple[Source, Any]], scorer: _Scorer, writer: Writer, batch_rows: int,
         progress: bool) -> tuple[int, int]:
    bar = Progress([s for s, _ in sources], enabled=progress and sys.stderr.isatty())
    rows = oor = 0
    for src, kept in sources:
        reader, handle = kept or open_stream(src.path, src.kind, scorer.features, scorer.keep, batch_rows)
        try:
            start = 0
            for batch in batches(src, reader, scorer.features, scorer.keep, batch_rows):
                out, n_oor = scorer.score(batch, src, start)
                writer.write(out)
                start += batch.num_rows
                oor += n_oor
                bar.update(start, handle.tell() if handle is not None and src.total is not None else None)
        finally:
            if handle is not None and src.path != STDIN:
                handle.close()
        rows += start
        bar.next_file()
    bar.close()
    return rows, oor


class _Scorer:
    """Turns a batch of input columns into a batch of output columns (kept columns, label, probabilities)."""

    def __init__(self, clf: Classifier, proba: bool, keep: tuple[str, ...], first: pa.Schema) -> None:
        self.clf, self.proba, self.keep, self.features = clf, proba, keep, clf.features
        self._classes = arrow_strings([str(c) for c in clf.classes_])
        proba_names = [f"proba_{c}" for c in self._classes.to_pylist()] if proba else []
        clash = [k for k in keep if k in (LABEL, *proba_names)]
        if clash:
            raise InputError(f"--keep column {clash[0]!r} clashes with an output column: rename it in the input")
        fields = [first.field(k) for k in keep] + [pa.field(LABEL, pa.string())]
        self.schema = pa.schema(fields + [pa.field(n, pa.float32()) for n in proba_names])
        # numbers never need CSV quotes; text does when it may hold a comma, a quote or a line break
        self.quote = any(not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)) for f in fields[:-1]) \
            or any(ch in c for c in self._classes.to_pylist() for ch in ',"\r\n')
        low, high = clf.manifest.training_range()
        self._low, self._high = np.array(low, np.float32), np.array(high, np.float32)  # (F,) each

    def score(self, batch: pa.RecordBatch, src: Source, start: int) -> tuple[pa.RecordBatch, int]:
        x = self._matrix(batch, src, start)  # (B, F) float32
        # one pass finds the rows off the training range; NaN and inf are among them, so only those are checked
        outside = ~((x >= self._low) & (x <= self._high)).all(axis=1)  # (B,)
        rows = np.flatnonzero(outside)
        bad = rows[~np.isfinite(x[rows]).all(axis=1)] if len(rows) else rows
        if len(bad):
            col = self.features[int(np.flatnonzero(~np.isfinite(x[bad[0]]))[0])]
            raise InputError(f"{where(src, start + int(bad[0]))}: NaN or inf (or a value beyond float32) in column "
                             f"{col!r}: expected finite numbers")
        p = self.clf.predict_proba(x, allow_nonfinite=True)  # (B, C); rows were checked above with file positions
        idx = p.argmax(axis=1).astype(np.int32)  # (B,)
        labels = pc.take(self._classes, pa.Array.from_buffers(pa.int32(), len(idx), [None, pa.py_buffer(idx)]))
        cols: list[Any] = [self._kept(batch.column(k), i, src) for i, k in enumerate(self.keep)] + [labels]
        if self.proba:
            cols += [arrow_f32(c) for c in np.ascontiguousarray(p.T)]  # (C, B): one contiguous column each
        return pa.RecordBatch.from_arrays(cols, schema=self.schema), len(rows)

    def _matrix(self, batch: pa.RecordBatch, src: Source, start: int) -> np.ndarray:
        x = np.empty((batch.num_rows, len(self.features)), np.float32)  # (B, F)
        for j, f in enumerate(self.features):
            col = batch.column(f)
            if col.null_count:
                i = int(pc.index(col.is_null(), True).as_py())
                raise InputError(f"{where(src, start + i)}: feature {f!r} is empty: expected a number")
            x[:, j] = numpy_of(col)
        return x

    def _kept(self, col: pa.Array, i: int, src: Source) -> pa.Array:
        want = self.schema.field(i).type
        if col.type == want:
            return col
        try:  # another file typed the same column differently: one output schema needs one type
            return col.cast(want)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(f"{src.path}: kept column {self.keep[i]!r} has type {col.type}, the first input's "
                             f"has {want}: expected the same type in every input") from None


def where(src: Source, row: int) -> str:
    """A row's position as its file names it: lines for text files (header on line 1 in CSV), else the row."""
    if src.kind == "csv":
        return f"{src.path} line {row + 2:,}"
    if src.kind == "jsonl":
        return f"{src.path} line {row + 1:,}"
    return f"{src.path} row {row:,} (0-based)"

