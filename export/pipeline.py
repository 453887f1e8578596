"""Export a model to every format, prove parity, write the manifest; verify a folder later."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from edgeclf.artifact.store import CHECKPOINT, MANIFEST, METRICS, staged_folder, write_json
from edgeclf.export import DEFAULT_BATCH_SIZES, DEFAULT_OPSET, MAX_BATCH, MAX_OPSET, MIN_OPSET
from edgeclf.export.checks import CheckSet, check_file, check_set, one_thread, torch_runner
from edgeclf.export.describe import describe, file_entry, graph_docs
from edgeclf.export.formats import SameGraph, write_onnx, write_pt2, write_torchscript
from edgeclf.export.keep import CardWriter, carry_over, edge_formats, previous
from edgeclf.export.layout import AS_TRACED, arrange
from edgeclf.export.parity import ParityResult, compare, run_chunked
from edgeclf.export.registry import ExportJob, is_checked, selected, write_all
from edgeclf.export.subject import ExportSpec, from_trained
from edgeclf.runtime.errors import ArtifactError, InputError, ParityError
from edgeclf.runtime.formats import INT8, ONNX, PT2, TORCHSCRIPT, options_of
from edgeclf.runtime.manifest import FileEntry, Manifest, file_sha256, onnx_metadata
from edgeclf.train.checkpoint import checkpoint_path, load_checkpoint


def validate_export_args(batch_sizes: Sequence[int], opset: int) -> tuple[int, ...]:
    sizes = tuple(sorted(set(int(b) for b in batch_sizes)))
    bad = [b for b in sizes if not 1 <= b <= MAX_BATCH]
    if not sizes or bad:
        raise InputError(f"batch size {bad[0] if bad else 'list'} is invalid: expected integers in 1..{MAX_BATCH}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InputError(f"opset {opset} is not supported: expected {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")
    return sizes


def write_onnx_files(job: ExportJob) -> list[FileEntry]:
    """One ONNX file per batch size, in the layout export.layout chooses for it (recorded in its manifest entry)."""
    s, entries = job.spec, []
    docs, names = graph_docs(s), [f.name for f in s.features]
    families: dict[str, SameGraph] = {}  # one export per arrangement, re-shaped for each batch size
    for b in job.sizes:
        name = ONNX.file_name(b)
        module, arranged = arrange(s.model, b, job.layout)
        reuse = None if arranged == AS_TRACED else families.setdefault(arranged, SameGraph(module, s.n_features))
        write_onnx(module, s.n_features, b, job.opset, job.folder / name,
                   onnx_metadata(s.name, s.kind, s.classes, names, b), docs, reuse=reuse)
        entries.append(file_entry(job.folder, name, ONNX.name, b, job.opset, details={"layout": arranged}))
    return entries


def write_torchscript_file(job: ExportJob) -> list[FileEntry]:
    """TorchScript traced at the largest batch size, from the module as trained; a trace runs at any batch."""
    s, big = job.spec, job.sizes[-1]
    write_torchscript(s.model, s.n_features, big, job.folder / TORCHSCRIPT.file)
    return [file_entry(job.folder, TORCHSCRIPT.file, TORCHSCRIPT.name, big, fixed=False)]


def write_pt2_file(job: ExportJob) -> list[FileEntry]:
    """The torch.export program, traced at the largest batch size from the module as trained."""
    s, big = job.spec, job.sizes[-1]
    write_pt2(s.model, s.n_features, big, job.folder / PT2.file)
    return [file_entry(job.folder, PT2.file, PT2.name, big)]


def write_checked(folder: Path, s: ExportSpec, sizes: tuple[int, ...], opset: int, edge: Sequence[str] = (),
                  c_prefix: str = "edgeclf", layout: str = "auto",
                  allow_lossy_int8: bool = False) -> tuple[Manifest, list[ParityResult]]:
    """Write every format (edge: the opt-in ones asked for) into folder (a staging folder), check each file the
    registry checks against eager, then the manifest.

    Raises ParityError naming the file, output, worst row and tolerance if any file misses the policy, and
    InputError if an int8 file does not pay for itself (export.int8.lossy) unless allow_lossy_int8."""
    checks = check_set(s.model, s.check_rows, s.domain, s.check_what, s.thresholds)
    entries = write_all(ExportJob(folder, s, sizes, opset, checks.x, layout, c_prefix), edge)
    entries = [judged_int8(e, allow_lossy_int8) if e.format == INT8.name else e for e in entries]
    results = [check_file(folder / e.path, e, checks) for e in entries if is_checked(e.format)]
    failed = [r for r in results if not r]
    if failed:
        raise ParityError("export refused, parity policy missed: " + "; ".join(str(r) for r in failed))
    manifest = describe(s, entries, results, checks.description)
    write_json(folder / MANIFEST, manifest.to_dict())
    return manifest, results


def judged_int8(entry: FileEntry, allowed: bool) -> FileEntry:
    """The int8 file's entry, refused when lossy (export.int8.lossy) unless allowed; then its details say so."""
    from edgeclf.export.int8 import lossy

    reason = lossy(entry.details)
    if reason is None:
        return entry
    if not allowed:
        raise InputError(f"int8 refused: {entry.path} {reason}; quantising does not pay for this model: drop "
                         f"--format int8, or pass --allow-lossy-int8 to write it anyway")
    return replace(entry, details={**entry.details, "lossy_allowed": reason})


def export_artifact(folder: Path, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, opset: int = DEFAULT_OPSET,
                    task: str | None = None, edge: Sequence[str] = (), c_prefix: str | None = None,
                    layout: str = "auto", card: CardWriter | None = None, allow_lossy_int8: bool = False,
                    formats: Sequence[str] = ()) -> tuple[Manifest, list[ParityResult]]:
    """Write ONNX (one per batch size), TorchScript, .pt2 and manifest.json into a trained folder, atomically.
    formats: the opt-in formats to add, by option or manifest name, as export_model takes them.

    The folder keeps what it held (export.keep): the edge formats its manifest lists are made again (the C header
    with its prefix unless c_prefix is given), its pictures and the user's own files are carried over, and
    MODEL_CARD.md is rewritten by `card` (report.build.write_card); anything else is dropped with a
    DroppedWarning naming it. Raises ParityError (and leaves the folder as it was) if any file misses the policy.
    """
    sizes = validate_export_args(batch_sizes, opset)
    edge = options_of([*edge, *formats])
    selected(edge)  # an unknown format is refused before anything is written, even the folder's lock
    folder = Path(folder)
    checkpoint_path(folder, task)  # fail before staging anything
    with staged_folder(folder, keep=(CHECKPOINT, METRICS)) as tmp:
        spec = from_trained(load_checkpoint(tmp, task))  # the staged copy: what we export is what we ship
        return write_kept(folder, tmp, spec, sizes, opset, edge, c_prefix, layout, card, allow_lossy_int8)


def write_kept(folder: Path, tmp: Path, s: ExportSpec, sizes: tuple[int, ...], opset: int, edge: Sequence[str],
               c_prefix: str | None, layout: str, card: CardWriter | None,
               allow_lossy_int8: bool = False) -> tuple[Manifest, list[ParityResult]]:
    """write_checked into tmp, the staged version of folder, then what folder held carried over (export.keep).
    A lossy int8 the folder's user allowed once stays allowed."""
    before = previous(folder)
    prefix = c_prefix or before.c_prefix or "edgeclf"
    done = write_checked(tmp, s, sizes, opset, edge_formats(edge, before), prefix, layout,
                         allow_lossy_int8 or before.lossy_int8_allowed)
    carry_over(before, tmp, s.origin.state_dict_sha256, card)
    return done


@dataclass(frozen=True)
class VerifyReport:
    manifest: Manifest
    results: list[ParityResult]

    def __bool__(self) -> bool:
        """Passed: at least one file was checked and every check passed."""
        return bool(self.results) and all(self.results)


def verify_artifact(folder: Path) -> VerifyReport:
    """Re-hash every file against the manifest and re-run every parity check against the checkpoint."""
    manifest, root = Manifest.read(folder)
    paths = [manifest.read_checked(root, e)[0] for e in manifest.files]  # sha256 first: refuse tampered files
    if manifest.origin.kind == "trained":
        spec = from_trained(load_checkpoint(root, manifest.task))
        checks = check_set(spec.model, spec.check_rows, manifest.domain, spec.check_what, manifest.thresholds)
    else:
        checks = _imported_checks(manifest, root)
    results = [check_file(p, e, checks) for p, e in zip(paths, manifest.files) if is_checked(e.format)]
    return VerifyReport(manifest, results)


def _imported_checks(manifest: Manifest, root: Path) -> CheckSet:
    """An imported model has no checkpoint: its reference is the .pt2 program (itself checked against the user's
    module at export) run by torch, on the check data saved beside it."""
    import numpy as np

    from edgeclf.export.formats import load_pt2

    details = manifest.origin.details
    data_path = root / str(details.get("check_data", ""))
    if not data_path.is_file() or file_sha256(data_path) != details.get("check_data_sha256"):
        raise ArtifactError(f"{data_path}: the check data of this imported model is missing or modified; re-export it")
    pt2 = next(iter(manifest.files_of(PT2.name)), None)
    if pt2 is None:
        raise ArtifactError(f"{root}: an imported model needs its model.pt2 as the parity reference; re-export it")
    reference = load_pt2(manifest.read_checked(root, pt2)[0])
    checks = check_set(reference, np.load(data_path, allow_pickle=False), manifest.domain, "check data",
                       manifest.thresholds)
    # the program runs only at its traced batch: its outputs there are the reference for every file
    with one_thread():
        traced = run_chunked(torch_runner(reference), checks.x, pt2.batch_size)
    checks.reference = traced  # sliced per batch size to the rows each file is checked on (a batch-1 file: a subset)
    return checks


@dataclass(frozen=True)
class RuntimeCheck:
    """How the torch-free runtime (Classifier) does on a folder, against labels and eager PyTorch."""

    test_accuracy: float
    agreement: float  # runtime labels == eager labels, test set + box
    parity: ParityResult


def runtime_check(folder: Path) -> RuntimeCheck:
    """Load folder through edgeclf.runtime.Classifier and compare it with eager PyTorch and the test labels."""
    from edgeclf.runtime import Classifier

    clf = Classifier.load(folder)
    spec = from_trained(load_checkpoint(folder, clf.manifest.task))
    m = clf.manifest
    checks: CheckSet = check_set(spec.model, spec.check_rows, m.domain, spec.check_what, m.thresholds)
    got = (clf.predict_logits(checks.x), clf.predict_proba(checks.x))
    parity = compare("Classifier", got, checks.full, checks.rounding(len(checks.x)), m.thresholds)
    assert spec.labelled is not None
    x_test, y_test = spec.labelled
    p_test = got[1][: len(x_test)]
    if m.multilabel:  # subset accuracy: every label of the row right
        acc = float(((p_test >= clf.thresholds_) == y_test.astype(bool)).all(axis=1).mean())
    else:
        acc = float((p_test.argmax(1) == y_test).mean())
    return RuntimeCheck(acc, parity.label_agreement, parity)
