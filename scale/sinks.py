"""Outputs of streaming scoring: CSV, Parquet or JSON Lines by extension (CSV on stdout without one), written with
pyarrow's writers; edgeclf.scale.paths puts them in a temp file beside the target, renamed when every row is in."""

from __future__ import annotations

import csv
import io
import json
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from edgeclf.tables.sources import arrow_strings

_CONTROL = [chr(c) for c in range(32)]


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Parquet dictionary encoding for text only: on random float columns (probabilities) it finds no repeats and
    costs about 4x the write time."""
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


class Writer:
    """One output stream: write(batch) in order, then close(). CSV values are quoted only when a column may need
    it (a kept text column, a class name with a comma): plain `label,proba_outer` otherwise, as before."""

    def __init__(self, kind: str, sink: str | IO[bytes], schema: pa.Schema, quote: bool = False) -> None:
        self.kind = kind
        self._w: Any = None
        self._own = isinstance(sink, str)  # a file we opened (closed here) or the caller's stream (flushed only)
        if kind == "parquet":
            self._w = pq.ParquetWriter(sink, schema, compression="snappy", use_dictionary=dictionary_columns(schema))
            return
        self._file: Any = pa.OSFile(sink, "wb") if isinstance(sink, str) else pa.PythonFile(sink, mode="w")
        if kind == "csv":
            header = io.StringIO()
            csv.writer(header, lineterminator="\n").writerow(schema.names)  # one line: quoted only if needed
            self._file.write(header.getvalue().encode())
            opts = pcsv.WriteOptions(include_header=False, quoting_style="needed" if quote else "none")
            self._w = pcsv.CSVWriter(self._file, schema, write_options=opts)

    def write(self, batch: pa.RecordBatch) -> None:
        if self._w is None:
            self._file.write(_jsonl_bytes(batch))
        else:
            self._w.write_batch(batch)

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
        if self.kind != "parquet":
            self._file.close() if self._own else self._file.flush()


def _s(text: str) -> pa.Scalar:
    """A string scalar made from an array: pa.scalar (like pa.array) imports pandas on its first call (+0.5 s)."""
    return arrow_strings([text])[0]


def _jsonl_bytes(batch: pa.RecordBatch) -> pa.Buffer:
    """One JSON object per row, built column-wise with arrow compute (no Python loop over rows)."""
    parts: list[Any] = []
    for i, (name, col) in enumerate(zip(batch.schema.names, batch.columns)):
        parts += [_s(("{" if i == 0 else ",") + json.dumps(name) + ":"), _json_values(col)]
    lines = pc.binary_join_element_wise(*parts, _s("}\n"), _s(""))  # the last argument is the separator
    _, offsets, data = lines.buffers()  # the lines lie end to end in one data buffer
    bounds = np.frombuffer(offsets, np.int32)[[lines.offset, lines.offset + len(lines)]]
    return data.slice(int(bounds[0]), int(bounds[1] - bounds[0]))


def _json_values(col: pa.Array) -> pa.Array:
    t = col.type
    if pa.types.is_floating(t):
        text = pc.if_else(pc.is_finite(col), pc.cast(col, pa.string()), pa.nulls(1, pa.string())[0])
    elif pa.types.is_integer(t) or pa.types.is_boolean(t):
        text = pc.cast(col, pa.string())
    else:
        s = pc.cast(col, pa.string())
        s = pc.replace_substring(pc.replace_substring(s, "\\", "\\\\"), '"', '\\"')
        if pc.any(pc.match_substring_regex(s, "[\\x00-\\x1f]")).as_py():  # rare: escape each control character
            for c in _CONTROL:
                s = pc.replace_substring(s, c, f"\\u{ord(c):04x}")
        text = pc.binary_join_element_wise(_s('"'), s, _s('"'), _s(""))
    return pc.coalesce(text, _s("null"))  # JSON has no NaN or inf: those and missing values become null
