"""Export a trained checkpoint folder to every format, prove parity, write the manifest; verify one later."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from edgeclf.export import DEFAULT_BATCH_SIZES, DEFAULT_OPSET, MAX_BATCH, MAX_OPSET, MIN_OPSET
from edgeclf.export.graph import (
    INPUT_NAME,
    OUTPUT_NAMES,
    ExportModel,
    load_pt2,
    load_torchscript,
    write_onnx,
    write_pt2,
    write_torchscript,
)
from edgeclf.export.parity import Outputs, ParityResult, compare, run_chunked
from edgeclf.runtime.errors import InputError, ParityError
from edgeclf.runtime.manifest import MANIFEST, FileEntry, Manifest, file_sha256, onnx_metadata
from edgeclf.train.model import ModelConfig
from edgeclf.train.storage import CHECKPOINT, METRICS, checkpoint_path, load_checkpoint, staged_folder, write_bytes
from edgeclf.train.tasks import Dataset, TaskSpec, get_task

GRID = 201  # the lesson's decision-boundary grid, finer (201 x 201 points)


@dataclass
class CheckSet:
    """The rows every file is checked on (test set + grid) and eager PyTorch's outputs on them.

    A file exported at batch B is compared with eager PyTorch run at batch B on the same chunks and padding:
    torch's own kernels differ by a few float32 ulps between batch sizes (1.1e-5 on circles' largest logits
    between B=5 and B=40601), and that is eager's variation, not the export's.
    """

    model: ExportModel
    x: np.ndarray  # (N, F) float32
    description: str
    _refs: dict[int, Outputs] = field(default_factory=dict)

    def ref(self, batch: int) -> Outputs:
        if batch not in self._refs:
            self._refs[batch] = run_chunked(torch_runner(self.model), self.x, batch)
        return self._refs[batch]

    @property
    def full(self) -> Outputs:
        """Eager PyTorch on all rows in one call."""
        return self.ref(len(self.x))


def load_eager(folder: Path, task: str | None = None) -> tuple[ExportModel, ModelConfig, dict[str, Any]]:
    """The checkpoint's model with its output activation, as eager PyTorch runs it: the parity reference."""
    mlp, cfg, metrics = load_checkpoint(Path(folder), task)
    return ExportModel(mlp, cfg.n_classes).eval(), cfg, metrics


def validate_export_args(batch_sizes: Sequence[int], opset: int) -> tuple[int, ...]:
    sizes = tuple(sorted(set(int(b) for b in batch_sizes)))
    bad = [b for b in sizes if not 1 <= b <= MAX_BATCH]
    if not sizes or bad:
        raise InputError(f"batch size {bad[0] if bad else 'list'} is invalid: expected integers in 1..{MAX_BATCH}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InputError(f"opset {opset} is not supported: expected {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")
    return sizes


def domain_of(x: np.ndarray, pad: float = 0.1) -> dict[str, list[float]]:
    """The plotted data range, as the lesson's plot_decision_boundary takes it: min/max +- 0.1."""
    return {"low": [round(float(v) - pad, 6) for v in x.min(0)], "high": [round(float(v) + pad, 6) for v in x.max(0)]}


def grid_points(domain: dict[str, list[float]], n: int = GRID) -> np.ndarray:
    """(n*n, 2) row-major grid over a 2-D domain, y outer, x inner."""
    xs = np.linspace(domain["low"][0], domain["high"][0], n, dtype=np.float32)
    ys = np.linspace(domain["low"][1], domain["high"][1], n, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)
    return np.c_[gx.ravel(), gy.ravel()].astype(np.float32)


def check_set(model: ExportModel, test: np.ndarray, domain: dict[str, list[float]]) -> CheckSet:
    """The test set's rows plus the grid over domain, checked against model."""
    x = np.concatenate([test, grid_points(domain)])
    what = f"test set ({len(test)}) + grid {GRID}x{GRID}, against eager PyTorch at each file's batch size"
    return CheckSet(model, x, what)


def runner(path: Path, fmt: str) -> Callable[[np.ndarray], Outputs]:
    """A function chunk (B, F) -> (logits, probabilities) for one exported file, loaded from disk."""
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda c: tuple(sess.run(list(OUTPUT_NAMES), {INPUT_NAME: c}))  # type: ignore[return-value]
    return torch_runner(load_torchscript(path) if fmt == "torchscript" else load_pt2(path))


def torch_runner(module: Callable[..., Any]) -> Callable[[np.ndarray], Outputs]:
    """chunk (B, F) numpy -> (logits, probabilities) numpy through a torch module (eager, TorchScript, .pt2)."""

    def run(c: np.ndarray) -> Outputs:
        with torch.inference_mode():
            logits, probs = module(torch.from_numpy(c))
        return logits.numpy(), probs.numpy()

    return run


def check_file(path: Path, entry: FileEntry, checks: CheckSet) -> ParityResult:
    got = run_chunked(runner(path, entry.format), checks.x, entry.batch_size)
    return compare(entry.path, got, checks.ref(entry.batch_size))


def _entry(folder: Path, name: str, fmt: str, batch: int, opset: int | None = None) -> FileEntry:
    p = folder / name
    return FileEntry(name, fmt, batch, file_sha256(p), p.stat().st_size, opset)


def _write_files(folder: Path, model: ExportModel, cfg: ModelConfig, spec: TaskSpec,
                 sizes: tuple[int, ...], opset: int) -> list[FileEntry]:
    entries = []
    for b in sizes:
        name = f"model.b{b}.onnx"
        meta = onnx_metadata(spec.name, spec.kind, list(spec.classes), list(spec.features), b)
        write_onnx(model, cfg.n_features, b, opset, folder / name, meta)
        entries.append(_entry(folder, name, "onnx", b, opset))
    big = sizes[-1]
    write_torchscript(model, cfg.n_features, big, folder / "model.torchscript.pt")
    entries.append(_entry(folder, "model.torchscript.pt", "torchscript", big))
    write_pt2(model, cfg.n_features, big, folder / "model.pt2")
    entries.append(_entry(folder, "model.pt2", "torch.export", big))
    return entries


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    try:
        own = metadata.version("edgeclf")
    except metadata.PackageNotFoundError:
        own = "unknown"
    return {"edgeclf": own, "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def data_summary(spec: TaskSpec, d: Dataset) -> dict[str, Any]:
    return {"description": spec.description, "train_rows": len(d.x_train), "test_rows": len(d.x_test),
            "split": "sklearn train_test_split(test_size=0.2, random_state=42)"}


def model_summary(cfg: ModelConfig) -> dict[str, Any]:
    layers = [cfg.n_features, *cfg.hidden, cfg.n_outputs]
    return {"architecture": "MLP " + "-".join(map(str, layers)), "hidden": list(cfg.hidden),
            "activation": cfg.activation, "parameters": sum(a * b + b for a, b in zip(layers, layers[1:])),
            "output_activation": "sigmoid ([1-p, p])" if cfg.n_outputs == 1 else "softmax"}


def _manifest(spec: TaskSpec, data: Dataset, cfg: ModelConfig, entries: list[FileEntry], metrics: dict[str, Any],
              results: list[ParityResult], checks: CheckSet, domain: dict[str, list[float]]) -> Manifest:
    n_logits = 1 if spec.kind == "binary" else spec.n_classes
    summary = {k: v for k, v in metrics.items() if k != "history"}
    return Manifest(
        task=spec.name, kind=spec.kind, classes=spec.classes, features=spec.features,
        input={"name": INPUT_NAME, "dtype": "float32"},
        outputs={"logits": {"name": "logits", "columns": n_logits},
                 "probabilities": {"name": "probabilities", "columns": spec.n_classes}},
        files=tuple(entries), metrics=summary, data=data_summary(spec, data), model=model_summary(cfg),
        parity={"checked_on": checks.description, "files": {r.file: r.to_dict() for r in results}},
        versions=versions(), domain=domain,
    )


def export_artifact(folder: Path, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, opset: int = DEFAULT_OPSET,
                    task: str | None = None) -> tuple[Manifest, list[ParityResult]]:
    """Write ONNX (one per batch size), TorchScript, .pt2 and manifest.json into folder, atomically.

    Raises ParityError (and leaves the folder as it was) if any file misses the tolerance policy.
    """
    sizes = validate_export_args(batch_sizes, opset)
    folder = Path(folder)
    checkpoint_path(folder, task)  # fail before staging anything
    with staged_folder(folder, keep=(CHECKPOINT, METRICS)) as tmp:
        model, cfg, metrics = load_eager(tmp, task)  # the staged copy: what we export is what we ship
        spec = get_task(cfg.task)
        data = spec.dataset()
        domain = domain_of(data.x_all)
        checks = check_set(model, data.x_test, domain)
        entries = _write_files(tmp, model, cfg, spec, sizes, opset)
        results = [check_file(tmp / e.path, e, checks) for e in entries]
        failed = [r for r in results if not r]
        if failed:
            raise ParityError("export refused, parity policy missed: " + "; ".join(str(r) for r in failed))
        manifest = _manifest(spec, data, cfg, entries, metrics, results, checks, domain)
        write_bytes(tmp / MANIFEST, manifest.to_json())
    return manifest, results


@dataclass(frozen=True)
class VerifyReport:
    manifest: Manifest
    results: list[ParityResult]

    def __bool__(self) -> bool:
        return all(self.results)


def verify_artifact(folder: Path) -> VerifyReport:
    """Re-hash every file against the manifest and re-run every parity check against the checkpoint."""
    manifest, root = Manifest.read(folder)
    paths = [manifest.read_checked(root, e)[0] for e in manifest.files]  # sha256 first: refuse tampered files
    model, cfg, _ = load_eager(root, manifest.task)
    checks = check_set(model, get_task(cfg.task).dataset().x_test, manifest.domain)
    results = [check_file(p, e, checks) for p, e in zip(paths, manifest.files)]
    return VerifyReport(manifest, results)


@dataclass(frozen=True)
class RuntimeCheck:
    """How the torch-free runtime (Classifier) does on a folder, against labels and eager PyTorch."""

    test_accuracy: float
    agreement: float  # runtime labels == eager labels, test set + grid
    parity: ParityResult


def runtime_check(folder: Path) -> RuntimeCheck:
    """Load folder through edgeclf.runtime.Classifier and compare it with eager PyTorch and the test labels."""
    from edgeclf.runtime import Classifier

    clf = Classifier.load(folder)
    model, cfg, _ = load_eager(folder, clf.manifest.task)
    data = get_task(cfg.task).dataset()
    checks = check_set(model, data.x_test, clf.manifest.domain)  # rows: the test set first, then the grid
    got = (clf.predict_logits(checks.x), clf.predict_proba(checks.x))
    parity = compare("Classifier", got, checks.full)
    acc = float((got[1][: len(data.x_test)].argmax(1) == data.y_test).mean())
    return RuntimeCheck(acc, parity.label_agreement, parity)
