"""Streaming scoring of files of any size: read a batch, score it, write it, so memory stays bounded.

    from edgeclf.scale.files import score_files
    report = score_files("artifacts/circles", ["in/*.parquet"], "pred.parquet", proba=True, keep=["id"])
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edgeclf.artifact.store import published
from edgeclf.runtime import Classifier
from edgeclf.runtime.errors import InputError
from edgeclf.scale.core import LABEL, Scorer, ScoreReport
from edgeclf.scale.paths import STDIN, expand, output_kind
from edgeclf.scale.progress import Progress
from edgeclf.scale.sinks import Writer
from edgeclf.tables.categories import codes
from edgeclf.tables.messages import empty_feature, position
from edgeclf.tables.sources import (
    Source,
    arrow_f32,
    arrow_strings,
    batches,
    close_stream,
    describe,
    numpy_of,
    open_stream,
)

__all__ = ["DEFAULT_BATCH_ROWS", "LABEL", "ScoreReport", "score_files"]

DEFAULT_BATCH_ROWS = 65536  # per-call costs vanish already; peak RSS grows with it (CSV: 180 MB at 32k, 240 at 131k)


def score_files(artifact: str | os.PathLike[str], inputs: str | Sequence[str], output: str | None = None, *,
                proba: bool = False, keep: Sequence[str] = (), batch_rows: int = DEFAULT_BATCH_ROWS,
                overwrite: bool = False, progress: bool = False, stdout: IO[bytes] | None = None,
                stdin: IO[bytes] | None = None) -> ScoreReport:
    """Score every row of INPUTS (paths or globs of .csv/.parquet/.jsonl/.npy, '-' = CSV on stdin) into OUTPUT
    (.csv/.parquet/.jsonl; None = CSV on stdout), in input order: kept columns, `label`, and with proba one
    `proba_<class>` column per class. Features are matched by name; memory does not grow with the input. stdin and
    stdout stand in for the process's own streams."""
    t0 = time.perf_counter()
    keep = tuple(keep)
    if batch_rows < 1:
        raise InputError(f"batch_rows {batch_rows}: expected a positive number of rows")
    kind = output_kind(output, overwrite) if output is not None else "csv"
    # no intra-op sessions: their threads spin between nodes and take the cores from pyarrow's reader and the writer
    # thread (5M rows of circles scored 15-30% faster without them)
    clf = Classifier.load(artifact, intra_op=False)
    found = expand([inputs] if isinstance(inputs, str) else inputs)
    sources = _describe_all(found, clf.features, keep, batch_rows, stdin, category_columns(clf))
    scorer = _ColumnScorer(clf, proba, keep, sources[0][0].schema)
    if output is None:
        writer = Writer("csv", stdout or sys.stdout.buffer, scorer.schema, scorer.quote)
        rows, outside = _run(sources, scorer, writer, batch_rows, progress)
        writer.close()
    else:
        rows, outside = _to_file(sources, scorer, kind, Path(output), batch_rows, progress, overwrite)
    return ScoreReport(rows, outside, time.perf_counter() - t0, len(sources), output)


def _describe_all(found: list[tuple[str, str]], features: Sequence[str], keep: Sequence[str], batch_rows: int,
                  stdin: IO[bytes] | None, cats: Sequence[str] = ()) -> list[tuple[Source, Any]]:
    """Every input's columns are checked before the first row is scored (a bad last file fails fast). Readers
    are closed again, except stdin's, which cannot be reopened."""
    out: list[tuple[Source, Any]] = []
    for path, kind in found:
        reader, handle = open_stream(path, kind, features, keep, batch_rows, stdin, cats)
        try:
            out.append((describe(path, kind, reader, features, keep, cats),
                        (reader, handle) if path == STDIN else None))
        except BaseException:
            close_stream(reader, handle, path)
            raise
        if path != STDIN:
            close_stream(reader, handle, path)
    return out


def _to_file(sources: list[tuple[Source, Any]], scorer: _ColumnScorer, kind: str, target: Path, batch_rows: int,
             progress: bool, overwrite: bool) -> tuple[int, int]:
    with published(target, overwrite) as tmp:
        writer = Writer(kind, str(tmp), scorer.schema, scorer.quote)
        try:
            rows, outside = _run(sources, scorer, writer, batch_rows, progress)
        finally:
            writer.close()
    return rows, outside


def _run(sources: list[tuple[Source, Any]], scorer: _ColumnScorer, writer: Writer, batch_rows: int,
         progress: bool) -> tuple[int, int]:
    bar = Progress([s for s, _ in sources], enabled=progress and sys.stderr.isatty())
    rows = outside = 0
    # batch i is written on its own thread while batch i+1 is read and scored: pyarrow's writers and onnxruntime
    # release the GIL, so the writer's encoding and compression no longer wait for the model (and vice versa)
    with ThreadPoolExecutor(1, thread_name_prefix="edgeclf-writer") as pool:
        pending: Future[None] | None = None
        for src, kept in sources:
            reader, handle = kept or open_stream(src.path, src.kind, scorer.features, scorer.keep, batch_rows,
                                                 categories=scorer.categories)
            try:
                start = 0
                for batch in batches(src, reader, scorer.features, scorer.keep, batch_rows):
                    out, n_outside = scorer.score(batch, src, start)
                    if pending is not None:
                        pending.result()  # in order, and at most one batch waiting to be written
                    pending = pool.submit(writer.write, out)
                    start += batch.num_rows
                    outside += n_outside
                    bar.update(start, handle.tell() if handle is not None and src.total is not None else None)
            finally:
                close_stream(reader, handle, src.path)
            rows += start
            bar.next_file()
        if pending is not None:
            pending.result()
    bar.close()
    return rows, outside


def category_columns(clf: Classifier) -> list[str]:
    """The features that are categories: read as text."""
    return [f for f, v in zip(clf.features, clf.vocabularies) if v is not None]


class _ColumnScorer:
    """Turns a batch of input columns into a batch of output columns (kept columns, label, probabilities)."""

    def __init__(self, clf: Classifier, proba: bool, keep: tuple[str, ...], first: pa.Schema) -> None:
        self.scorer, self.proba, self.keep, self.features = Scorer(clf, proba, keep), proba, keep, clf.features
        self._classes = arrow_strings(self.scorer.classes)
        self.categories = category_columns(clf)
        self._imputed, self._vocabs = clf.imputed, clf.vocabularies  # per feature, read once per model
        kept = [first.field(k) for k in keep]
        decisions = [pa.field(n, pa.int8()) for n in self.scorer.decision_names] if self.scorer.multilabel \
            else [pa.field(LABEL, pa.string())]
        self.schema = pa.schema(kept + decisions + [pa.field(n, pa.float32()) for n in self.scorer.proba_names])
        # numbers never need CSV quotes; text does when it may hold a comma, a quote or a line break
        self.quote = any(not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)) for f in kept) \
            or (not self.scorer.multilabel and any(ch in c for c in self.scorer.classes for ch in ',"\r\n'))

    def score(self, batch: pa.RecordBatch, src: Source, start: int) -> tuple[pa.RecordBatch, int]:
        p, idx, outside = self.scorer.score(self._matrix(batch, src, start), src.path, src.kind, start)
        cols: list[Any] = [self._kept(batch.column(k), i, src) for i, k in enumerate(self.keep)]
        if self.scorer.multilabel:  # (B, L) int8 0/1: one column per label
            cols += [pa.array(c) for c in np.ascontiguousarray(idx.T)]
        else:
            cols.append(pc.take(self._classes, pa.Array.from_buffers(pa.int32(), len(idx),
                                                                     [None, pa.py_buffer(idx)])))
        if self.proba:
            cols += [arrow_f32(c) for c in np.ascontiguousarray(p.T)]  # (C, B): one contiguous column each
        return pa.RecordBatch.from_arrays(cols, schema=self.schema), outside

    def _matrix(self, batch: pa.RecordBatch, src: Source, start: int) -> np.ndarray:
        x = np.empty((batch.num_rows, len(self.features)), np.float32)  # (B, F)
        for j, f in enumerate(self.features):
            col = batch.column(f)
            vocab = self._vocabs[j]
            if vocab is not None and not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
                # text: its index in the vocabulary; an empty cell or an unseen value stops here
                x[:, j] = codes(col, f, vocab, lambda i: position(src.path, src.kind, start + i), indices=True)
                continue
            if col.null_count and self._imputed[j]:  # an empty cell the model fills: NaN in, the graph's fill out
                col = pc.fill_null(col, float("nan"))
            elif col.null_count:
                i = int(pc.index(col.is_null(), True).as_py())
                raise empty_feature(position(src.path, src.kind, start + i), f)
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

