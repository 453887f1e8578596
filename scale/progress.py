"""A one-line progress bar on stderr for streaming scoring: rows, rows/s, and the ETA when the size is known."""

from __future__ import annotations

import sys
import time
from typing import Sequence

from edgeclf.tables.sources import Source

REFRESH_S = 0.25


class Progress:
    """The ETA comes from rows when every input knows its row count (Parquet metadata, .npy shape), else from
    bytes read when every input is a file of known size (CSV, JSONL), else there is none."""

    def __init__(self, sources: Sequence[Source], enabled: bool) -> None:
        self.enabled = enabled
        self._by_bytes = all(s.by_bytes for s in sources)
        totals = [s.total for s in sources]
        self._total = sum(t for t in totals if t is not None) if None not in totals else None
        if not self._by_bytes and any(s.by_bytes for s in sources):
            self._total = None  # mixed rows and bytes: no honest fraction
        self._sizes = [s.total or 0 for s in sources]
        self._file = 0
        self._done_rows = 0  # rows of finished files
        self._seen_rows = 0
        self._t0 = self._last = time.perf_counter()

    def update(self, file_rows: int, file_bytes: int | None) -> None:
        self._seen_rows = self._done_rows + file_rows
        now = time.perf_counter()
        if not self.enabled or now - self._last < REFRESH_S:
            return
        self._last = now
        rate = self._seen_rows / max(now - self._t0, 1e-9)
        done = self._done_units(file_rows, file_bytes)
        eta = ""
        if self._total and done:
            eta = f"  ETA {_clock((now - self._t0) * (self._total - done) / done)}"
            eta = f"  {min(done / self._total, 1.0):4.0%}" + eta
        sys.stderr.write(f"\r{self._seen_rows:>14,} rows  {_rate(rate)}{eta}   ")
        sys.stderr.flush()

    def _done_units(self, file_rows: int, file_bytes: int | None) -> int:
        if self._by_bytes:
            return sum(self._sizes[: self._file]) + (file_bytes or 0)
        return self._seen_rows

    def next_file(self) -> None:
        self._file += 1
        self._done_rows = self._seen_rows

    def close(self) -> None:
        if self.enabled:
            self._last = 0.0
            self.update(self._seen_rows - self._done_rows, None)
            sys.stderr.write("\n")


def _rate(rows_per_s: float) -> str:
    """M rows/s where that reads well; a slow or tiny input in rows/s (never "0.00 M rows/s")."""
    return f"{rows_per_s / 1e6:6.2f} M rows/s" if rows_per_s >= 100_000 else f"{rows_per_s:9,.0f} rows/s"


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
