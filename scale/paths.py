"""Inputs and outputs of file scoring by name: globs expanded, kinds told by extension (edgeclf.tables.kinds), a
single-file output checked before any work (edgeclf.artifact.store.published writes it). Pure Python (no pyarrow),
so the small-input path of `edgeclf predict` shares these with the streaming one."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Sequence

from edgeclf.runtime.errors import InputError, OutputExists
from edgeclf.tables.kinds import KINDS, OUT_KINDS, STDIN, kind_of

__all__ = ["STDIN", "expand", "output_kind"]


def expand(inputs: Sequence[str]) -> list[tuple[str, str]]:
    """(path, kind) for every input, globs expanded in sorted order; '-' is CSV on stdin."""
    out: list[tuple[str, str]] = []
    for item in inputs:
        if item == STDIN:
            out.append((STDIN, "csv"))
            continue
        paths = sorted(glob.glob(item)) if glob.has_magic(item) else [item]
        if not paths:
            raise InputError(f"{item!r} matches no file: expected a path or glob of {', '.join(KINDS)} files")
        out.extend((p, _kind(p)) for p in paths)
    if not out:
        raise InputError("no input given: expected one or more paths or globs, or '-' for CSV on stdin")
    return out


def _kind(path: str) -> str:
    p = Path(path)
    kind = kind_of(p)
    if kind is None:
        raise InputError(f"{path}: unknown extension {p.suffix or '(none)'!r}: expected one of {', '.join(KINDS)}")
    if not p.is_file():
        raise InputError(f"{path} does not exist or is not a file")
    return kind


def output_kind(output: str, overwrite: bool) -> str:
    """Check a single-file output before any work: a known extension, a file (not a folder), a parent that
    exists, and no existing file unless overwrite."""
    p = Path(output)
    if p.is_dir() or output.endswith(os.sep):
        raise InputError(f"output {output!r} is a folder: expected a file path ending in {', '.join(OUT_KINDS)}")
    kind = OUT_KINDS.get(p.suffix.lower())
    if kind is None:
        raise InputError(f"output {output!r}: unknown extension {p.suffix or '(none)'!r}: "
                         f"expected one of {', '.join(OUT_KINDS)}")
    if not p.parent.is_dir():
        raise InputError(f"output {output!r}: folder {str(p.parent)!r} does not exist")
    if p.exists() and not overwrite:
        raise OutputExists(output)
    return kind
