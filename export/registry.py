"""The export side of the format registry (edgeclf.runtime.formats): which formats an export writes, and the writer
and parity runner each entry names, imported when first used so that `import edgeclf.export` stays cheap.

A writer is `(ExportJob) -> list[FileEntry]`: it writes its files into job.folder and returns their manifest
entries (export.describe.file_entry). A parity runner is `(path) -> (chunk (B, F) -> (logits, probabilities))`.
A card snippet is `(Manifest, FileEntry) -> markdown` that loads the file and classifies `example_row`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from edgeclf.runtime.errors import InputError
from edgeclf.runtime.formats import FORMATS, OPT_IN, OPTIONS, Format, named
from edgeclf.runtime.manifest import FileEntry, Manifest

if TYPE_CHECKING:
    from edgeclf.export.parity import Outputs
    from edgeclf.export.subject import ExportSpec


@dataclass
class ExportJob:
    """What every writer gets: the folder, the model and its facts, the export's settings, and the files written before it
    (.ort and int8 derive from the ONNX files)."""

    folder: Path
    spec: ExportSpec
    sizes: tuple[int, ...]  # the ONNX batch sizes, ascending
    opset: int
    check_rows: np.ndarray  # (N, F) float32: the rows every file is checked on
    layout: str = "auto"
    c_prefix: str = "edgeclf"
    written: list[FileEntry] = field(default_factory=list)

    def files_of(self, fmt: Format) -> list[FileEntry]:
        return [e for e in self.written if e.format == fmt.name]


Writer = Callable[[ExportJob], list[FileEntry]]
RunnerFactory = Callable[[Path], Callable[[np.ndarray], "Outputs"]]


def load(ref: str) -> Any:
    """The object a registry entry names as "module:attribute"."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def example_row(m: Manifest) -> list[float]:
    """The row every card snippet classifies: the training means to 4 significant digits (0.0 where unknown); a
    category column takes its first value's index, 0.0 (the mean of the indices is no category's index)."""
    return [float(f"{f.mean:.4g}") if f.mean is not None and f.categories is None else 0.0 for f in m.features]


def decision_code(m: Manifest) -> str:
    """The Python snippets' line that prints the decision from p (one row's probabilities): the class of the highest,
    or for a multi-label model every label's 0/1 (1 where its probability reaches its threshold), `label=0|1`."""
    if m.multilabel:
        return (f"print(\" \".join(f\"{{k}}={{int(pk >= t)}}\" for k, pk, t in zip({list(m.classes)}, p.tolist(), "
                f"{list(m.thresholds)})))")
    return f"print({list(m.classes)}[int(p.argmax())])"


def selected(options: Sequence[str]) -> tuple[Format, ...]:
    """The formats an export writes: every default one, and the opt-in ones asked for, in registry order."""
    unknown = [o for o in options if o not in OPTIONS]
    if unknown:
        raise InputError(f"unknown format {unknown[0]!r}: expected one of {', '.join(OPTIONS)}")
    return tuple(f for f in FORMATS if f not in OPT_IN or f.option in options)


def write_all(job: ExportJob, options: Sequence[str]) -> list[FileEntry]:
    """Write every selected format into job.folder, in registry order; their manifest entries, in that order."""
    for fmt in selected(options):
        write: Writer = load(fmt.write)
        job.written += write(job)
    return job.written


def is_checked(fmt: str) -> bool:
    """Whether files of this manifest format are checked against eager PyTorch (export and `edgeclf verify`)."""
    f = named(fmt)
    return f is not None and bool(f.runner)


def parity_runner(path: Path, fmt: str) -> Callable[[np.ndarray], Outputs]:
    """A function chunk (B, F) -> (logits, probabilities) for one exported file, loaded from disk."""
    f = named(fmt)
    if f is None or not f.runner:
        raise ValueError(f"no runner for format {fmt!r}")
    make: RunnerFactory = load(f.runner)
    return make(path)
