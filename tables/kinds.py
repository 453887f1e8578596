"""File types by extension (any case), and a look at a text file's first bytes. Pure Python: the small-input path
of `edgeclf predict` uses it without importing pyarrow. A new input file type is one entry in KINDS plus its reader
in edgeclf.tables.sources."""

from __future__ import annotations

import os
from pathlib import Path

from edgeclf.runtime.errors import InputError

KINDS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".npy": "npy"}
OUT_KINDS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
STDIN = "-"  # CSV on standard input
PROBE_BYTES = 4096  # how much of a text file is looked at before a reader gets it
# bytes that never occur in a text CSV (tab, line feed, vertical tab, form feed and carriage return do)
_BINARY = frozenset(range(9)) | frozenset(range(14, 32))


def kind_of(path: str | os.PathLike[str]) -> str | None:
    """'csv', 'parquet', 'jsonl' or 'npy' by the file's extension, in any case; None for another one."""
    return KINDS.get(Path(path).suffix.lower())


def is_parquet(path: str | os.PathLike[str]) -> bool:
    return kind_of(path) == "parquet"


def check_text(head: bytes, where: str) -> None:
    """A file whose first bytes hold a control character is no text CSV: say so before a CSV reader meets it
    (its message would quote raw bytes). The byte is named by its value, never echoed."""
    head = head[:PROBE_BYTES]
    bad = next((i for i, b in enumerate(head) if b in _BINARY), None)
    if bad is not None:
        raise InputError(f"{where}: not a text CSV (byte 0x{head[bad]:02x} at offset {bad}): expected comma-separated "
                         "text with a header line", file=where)
    if sum(b >= 0x80 for b in head) > len(head) // 4 and not _utf8(head):  # a legacy 8-bit text has a few such bytes
        raise InputError(f"{where}: not a text CSV (mostly bytes that are not UTF-8 text): expected comma-separated "
                         "text with a header line", file=where)


def _utf8(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(head) - 3  # only a character cut at the end of the sample
    return True


def check_text_file(path: str | os.PathLike[str], where: str | None = None) -> None:
    """check_text on a file's first bytes (an unreadable file is left to its reader to name)."""
    try:
        with open(path, "rb") as f:
            head = f.read(PROBE_BYTES)
    except OSError:
        return
    check_text(head, where or str(path))
