"""`edgeclf predict` on this machine: small CSV inputs (CSV out) go through edgeclf.scale.small, without importing
pyarrow (~0.3 s and ~50 MB of start-up); everything else, or an input that turns out large, streams through
edgeclf.scale.files. Both give the same bytes and the same errors.

    from edgeclf.scale.local import score_local
    score_local("artifacts/circles", ["-"], None)           # CSV on stdin -> CSV on stdout
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import IO, Any, Sequence

from edgeclf.runtime.errors import InputError
from edgeclf.scale.core import ScoreReport
from edgeclf.scale.paths import STDIN, expand, output_kind
from edgeclf.scale.small import SMALL_BYTES, Unsupported, score_small


def score_local(artifact: str | os.PathLike[str], inputs: str | Sequence[str], output: str | None = None, *,
                proba: bool = False, keep: Sequence[str] = (), batch_rows: int = 65536, overwrite: bool = False,
                progress: bool = False, stdout: IO[bytes] | None = None, stdin: IO[bytes] | None = None) -> ScoreReport:
    """score_files' arguments and result. Small: CSV inputs (files and '-', once) of SMALL_BYTES in all, CSV out.
    stdin is read up to that size; beyond it, what was read and the rest go to the streaming path."""
    if batch_rows < 1:
        raise InputError(f"batch_rows {batch_rows}: expected a positive number of rows")
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    csv_out = output is None or output_kind(output, overwrite) == "csv"  # checked first, as score_files does
    found = expand(inputs)
    reads_stdin = any(p == STDIN for p, _ in found)
    source = (stdin or sys.stdin.buffer) if reads_stdin else None
    head = None
    if csv_out and all(k == "csv" for _, k in found) and sum(p == STDIN for p, _ in found) <= 1:
        left = SMALL_BYTES - sum(Path(p).stat().st_size for p, _ in found if p != STDIN)
        if left >= 0 and source is not None:
            head = source.read(left + 1)
        if left >= 0 and (head is None or len(head) <= left):
            try:
                return score_small(artifact, inputs, output, proba=proba, keep=keep, overwrite=overwrite,
                                   stdout=stdout, stdin=head)
            except Unsupported:  # found while reading, before any output: the streaming path reads it all again
                pass
    from edgeclf.scale.files import score_files  # imports pyarrow

    rest = source if head is None or source is None else io.BufferedReader(_Prefixed(head, source), 1 << 20)
    return score_files(artifact, inputs, output, proba=proba, keep=keep, batch_rows=batch_rows,
                       overwrite=overwrite, progress=progress, stdout=stdout, stdin=rest)


class _Prefixed(io.RawIOBase):
    """Bytes already read from a stream, then the rest of that stream."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head, self._rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if len(self._head):
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)
