"""manifest.json (schema edgeclf.manifest/1): written by the exporter and read by the runtime, with this code."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from edgeclf.runtime.errors import ArtifactError

SCHEMA = "edgeclf.manifest/1"
MANIFEST = "manifest.json"
FORMATS = ("onnx", "torchscript", "torch.export")
_REQUIRED = ("schema", "task", "kind", "classes", "features", "input", "outputs", "files", "domain")


def json_bytes(obj: Any) -> bytes:
    """The one JSON encoding of every file edgeclf commits: stable keys order, 2-space indent, final newline."""
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def onnx_metadata(task: str, kind: str, classes: Sequence[str], features: Sequence[str], batch: int) -> dict[str, str]:
    """The metadata_props the exporter writes into every ONNX file and the runtime checks on load."""
    return {
        "edgeclf.schema": SCHEMA,
        "edgeclf.task": task,
        "edgeclf.kind": kind,
        "edgeclf.classes": json.dumps(list(classes)),
        "edgeclf.features": json.dumps(list(features)),
        "edgeclf.batch_size": str(batch),
    }


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the artifact folder, no '..'
    format: str  # onnx | torchscript | torch.export
    batch_size: int
    sha256: str
    bytes: int
    opset: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.opset is None:
            del d["opset"]
        return d


@dataclass(frozen=True)
class Manifest:
    task: str
    kind: str  # binary | multiclass
    classes: tuple[str, ...]  # index i = probability column i
    features: tuple[str, ...]
    input: dict[str, Any]  # {name, dtype}
    outputs: dict[str, Any]  # {logits: {name, columns}, probabilities: {name, columns}}
    files: tuple[FileEntry, ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)  # file path -> parity figures
    versions: dict[str, str] = field(default_factory=dict)
    domain: dict[str, list[float]] = field(default_factory=dict)  # {low: [..], high: [..]} per feature
    data: dict[str, Any] = field(default_factory=dict)  # description, rows, split (for the model card)
    model: dict[str, Any] = field(default_factory=dict)  # architecture summary (for the model card)
    schema: str = SCHEMA

    @property
    def onnx_files(self) -> list[FileEntry]:
        return sorted((f for f in self.files if f.format == "onnx"), key=lambda f: f.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema, "task": self.task, "kind": self.kind,
            "classes": list(self.classes), "features": list(self.features),
            "input": self.input, "outputs": self.outputs,
            "files": [f.to_dict() for f in self.files],
            "domain": self.domain, "data": self.data, "model": self.model, "metrics": self.metrics,
            "parity": self.parity, "versions": self.versions,
        }

    def to_json(self) -> bytes:
        return json_bytes(self.to_dict())

    @classmethod
    def from_dict(cls, d: Any, where: str = MANIFEST) -> Manifest:
        if not isinstance(d, dict):
            raise ArtifactError(f"{where}: expected a JSON object, got {type(d).__name__}")
        if d.get("schema") != SCHEMA:
            raise ArtifactError(f"{where}: unknown schema {d.get('schema')!r}, expected {SCHEMA!r}")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise ArtifactError(f"{where}: missing key(s) {', '.join(missing)}")
        try:
            m = cls(
                task=str(d["task"]), kind=str(d["kind"]),
                classes=tuple(str(c) for c in d["classes"]), features=tuple(str(f) for f in d["features"]),
                input=dict(d["input"]), outputs=dict(d["outputs"]),
                files=tuple(FileEntry(**f) for f in d["files"]),
                metrics=dict(d.get("metrics", {})), parity=dict(d.get("parity", {})),
                versions=dict(d.get("versions", {})), domain=dict(d["domain"]),
                data=dict(d.get("data", {})), model=dict(d.get("model", {})),
            )
        except (TypeError, ValueError) as e:
            raise ArtifactError(f"{where}: malformed entry ({e})") from None
        m.validate(where)
        return m

    def validate(self, where: str = MANIFEST) -> None:
        expected_kind = "binary" if len(self.classes) == 2 else "multiclass"
        if len(self.classes) < 2 or self.kind != expected_kind:
            raise ArtifactError(f"{where}: kind {self.kind!r} with {len(self.classes)} classes, expected {expected_kind!r}")
        if not self.features:
            raise ArtifactError(f"{where}: no features listed")
        if not isinstance(self.input.get("name"), str) or self.input.get("dtype") != "float32":
            raise ArtifactError(f"{where}: input must be {{name, dtype: float32}}, got {self.input}")
        for f in self.files:
            if f.format not in FORMATS:
                raise ArtifactError(f"{where}: file {f.path!r} has unknown format {f.format!r}, expected one of {FORMATS}")
            if not isinstance(f.batch_size, int) or f.batch_size < 1:
                raise ArtifactError(f"{where}: file {f.path!r} has batch_size {f.batch_size!r}, expected an integer >= 1")
            _check_relative(f.path, where)

    @classmethod
    def read(cls, path: str | Path) -> tuple[Manifest, Path]:
        """Read a manifest from an artifact folder or its manifest.json; returns it and the folder."""
        p = Path(path)
        file = p / MANIFEST if p.is_dir() else p
        if not file.is_file():
            raise ArtifactError(f"no {MANIFEST} at {file}: expected an artifact folder made by `edgeclf export`")
        try:
            data = json.loads(file.read_bytes())
        except (OSError, ValueError) as e:
            raise ArtifactError(f"{file}: not valid JSON ({e})") from None
        return cls.from_dict(data, str(file)), file.parent

    def resolve(self, folder: Path, entry: FileEntry) -> Path:
        """The entry's file inside folder; anything that escapes the folder (symlinks too) is refused."""
        root = folder.resolve()
        target = (root / entry.path).resolve()
        if root not in target.parents:
            raise ArtifactError(f"file {entry.path!r} resolves outside the artifact folder {root}")
        return target

    def read_checked(self, folder: Path, entry: FileEntry) -> tuple[Path, bytes]:
        """The entry's path and bytes, read once and checked against its sha256 and size: a mismatch is an
        error, never a warning. Callers use these bytes, so nothing changes between check and use."""
        target = self.resolve(folder, entry)
        if not target.is_file():
            raise ArtifactError(f"{entry.path} listed in the manifest is missing from {folder}")
        data = target.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.sha256 or len(data) != entry.bytes:
            raise ArtifactError(
                f"{entry.path}: sha256 {digest[:12]}... ({len(data)} bytes) does not match the manifest's "
                f"{entry.sha256[:12]}... ({entry.bytes} bytes): the file was modified or corrupted; re-export it"
            )
        return target, data

def _check_relative(path: str, where: str) -> None:
    parts = Path(path).parts
    if not path or Path(path).is_absolute() or ".." in parts or "\\" in path:
        raise ArtifactError(f"{where}: file path {path!r} must be relative to the artifact folder, without '..'")
