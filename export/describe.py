"""The manifest and the in-graph documentation of an export, assembled from its ExportSpec and parity results."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from edgeclf.export.formats import GraphDocs
from edgeclf.export.parity import POLICY, ParityResult
from edgeclf.export.subject import ExportSpec, own_version, versions
from edgeclf.runtime.contract import (
    INPUT_DTYPE,
    INPUT_NAME,
    LOGITS,
    OUTPUT_NAMES,
    PADDING_RULE,
    PROBABILITIES,
    logits_meaning,
    n_logits,
    probabilities_meaning,
)
from edgeclf.runtime.manifest import FileEntry, Manifest, OutputSpec, Parity, Signature, file_sha256


def file_entry(folder: Path, name: str, fmt: str, batch: int, opset: int | None = None, fixed: bool = True,
               details: Mapping[str, int | float | str] | None = None) -> FileEntry:
    """The manifest entry of a file just written into folder: its hash and size measured from disk."""
    p = folder / name
    return FileEntry(name, fmt, batch, file_sha256(p), p.stat().st_size, opset, fixed, dict(details or {}))


def signature(classes: Sequence[str], kind: str = "") -> Signature:
    k = len(classes)
    return Signature(
        INPUT_NAME,
        OutputSpec(LOGITS, n_logits(k, kind), OUTPUT_NAMES.index(LOGITS), logits_meaning(classes, kind)),
        OutputSpec(PROBABILITIES, k, OUTPUT_NAMES.index(PROBABILITIES), probabilities_meaning(classes, kind)),
        INPUT_DTYPE, PADDING_RULE,
    )


def graph_docs(s: ExportSpec) -> GraphDocs:
    names = [f.name for f in s.features]
    return GraphDocs(
        graph=f"edgeclf model {s.name!r}: {s.kind} classifier of {len(names)} features into "
              f"{'labels' if s.thresholds else 'classes'} {list(s.classes)}; {s.origin.architecture}.",
        input=f"(B, {len(names)}) float32 raw feature values, columns in order {names}.",
        logits=logits_meaning(s.classes, s.kind), probabilities=probabilities_meaning(s.classes, s.kind),
        producer_version=own_version(),
        model_version=int(s.origin.state_dict_sha256[:12], 16),  # the weights' identity, as a number
    )


def describe(s: ExportSpec, entries: list[FileEntry], results: list[ParityResult], checked_on: str) -> Manifest:
    return Manifest(
        task=s.name, kind=s.kind, classes=s.classes, features=s.features, signature=signature(s.classes, s.kind),
        files=tuple(entries), domain=s.domain, origin=s.origin,
        parity=Parity(checked_on, POLICY, {r.file: r.summary() for r in results}),
        data=s.data, metrics=s.metrics, versions=versions(), thresholds=s.thresholds,
    )
