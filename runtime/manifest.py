"""manifest.json (schema edgeclf.manifest/2): written by the exporter and read by the runtime, with this code.

Every section is a frozen dataclass that reads (`from_dict`, validating as it goes), and writes (`to_dict`) itself;
a manifest missing a required part is an ArtifactError naming it, at load time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from edgeclf.runtime.contract import INPUT_DTYPE, MULTILABEL, kind_of, n_logits
from edgeclf.runtime.errors import ArtifactError
from edgeclf.runtime.formats import NAMES, ONNX

SCHEMA = "edgeclf.manifest/2"
OLD_SCHEMAS = ("edgeclf.manifest/1",)
MANIFEST = "manifest.json"
FORMATS = NAMES  # every format's name (edgeclf.runtime.formats)
ORIGINS = ("trained", "imported")


class _Reader:
    """Typed access to one JSON object of the manifest; every failure names the section and key."""

    def __init__(self, d: Any, where: str) -> None:
        if not isinstance(d, dict):
            raise ArtifactError(f"{where}: expected a JSON object, got {type(d).__name__}")
        self.d, self.where = d, where

    def get(self, key: str, types: type | tuple[type, ...], default: Any = ..., *, where: str = "") -> Any:
        if key not in self.d or self.d[key] is None:
            if default is ...:
                raise ArtifactError(f"{self.where}: missing required key {key!r}")
            return default
        v = self.d[key]
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in _as_tuple(types))
        if not ok:
            raise ArtifactError(f"{self.where}.{key}: {v!r} has the wrong type, expected {_names(types)}")
        return v

    def number(self, key: str, default: Any = ...) -> float | None:
        v = self.get(key, (int, float), default)
        return None if v is None else float(v)

    def section(self, key: str) -> _Reader:
        return _Reader(self.get(key, dict), f"{self.where}.{key}")

    def strings(self, key: str) -> tuple[str, ...]:
        v = self.get(key, list)
        if not all(isinstance(s, str) for s in v):
            raise ArtifactError(f"{self.where}.{key}: expected a list of strings, got {v!r}")
        return tuple(v)

    def numbers(self, key: str) -> tuple[float, ...]:
        v = self.get(key, list)
        if not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in v):
            raise ArtifactError(f"{self.where}.{key}: expected a list of numbers, got {v!r}")
        return tuple(float(s) for s in v)


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _names(t: type | tuple[type, ...]) -> str:
    return " or ".join(x.__name__ for x in _as_tuple(t))


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


@dataclass(frozen=True)
class Feature:
    """One input column: its name, dtype and what training saw (range, mean, std). fill: the value the model puts
    in place of NaN (an empty cell) in this column, trained with --impute median; None: NaN is refused."""

    name: str
    dtype: str = INPUT_DTYPE
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    fill: float | None = None
    # a category: its vocabulary; the model's input holds the value's index in it (the graph one-hots it)
    categories: tuple[str, ...] | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Feature:
        r = _Reader(d, where)
        dtype = r.get("dtype", str)
        if dtype != INPUT_DTYPE:
            raise ArtifactError(f"{where}.dtype: {dtype!r}, expected {INPUT_DTYPE!r}")
        cats = r.strings("categories") if r.get("categories", list, None) is not None else None
        low, high, mean, std, fill = (r.number(k, None) for k in ("min", "max", "mean", "std", "fill"))
        return cls(r.get("name", str), dtype, low, high, mean, std, fill, cats)

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(dict(name=self.name, dtype=self.dtype, min=self.min, max=self.max, mean=self.mean,
                               std=self.std, fill=self.fill,
                               categories=None if self.categories is None else list(self.categories)))


@dataclass(frozen=True)
class OutputSpec:
    name: str  # the graph output's name
    columns: int
    index: int  # position in a TorchScript / .pt2 output tuple
    meaning: str = ""

    @classmethod
    def from_dict(cls, d: Any, where: str) -> OutputSpec:
        r = _Reader(d, where)
        return cls(r.get("name", str), r.get("columns", int), r.get("index", int), r.get("meaning", str, ""))

    def to_dict(self) -> dict[str, Any]:
        return dict(name=self.name, columns=self.columns, index=self.index, meaning=self.meaning)


@dataclass(frozen=True)
class Signature:
    """The graph's input and two outputs, and how to feed a fixed-batch file."""

    input: str
    logits: OutputSpec
    probabilities: OutputSpec
    dtype: str = INPUT_DTYPE
    padding: str = ""

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Signature:
        r = _Reader(d, where)
        if r.get("dtype", str) != INPUT_DTYPE:
            raise ArtifactError(f"{where}.dtype: {r.get('dtype', str)!r}, expected {INPUT_DTYPE!r}")
        outs = r.section("outputs")
        return cls(r.get("input", str), OutputSpec.from_dict(outs.get("logits", dict), f"{where}.outputs.logits"),
                   OutputSpec.from_dict(outs.get("probabilities", dict), f"{where}.outputs.probabilities"),
                   r.get("dtype", str), r.get("padding", str, ""))

    def to_dict(self) -> dict[str, Any]:
        return dict(input=self.input, dtype=self.dtype, padding=self.padding,
                    outputs={"logits": self.logits.to_dict(), "probabilities": self.probabilities.to_dict()})

    def output(self, key: str) -> OutputSpec:
        return self.logits if key == "logits" else self.probabilities


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the artifact folder, no '..'
    format: str  # one of FORMATS
    batch_size: int
    sha256: str
    bytes: int
    opset: int | None = None
    fixed_batch: bool = True  # False: the file accepts any batch (TorchScript does; the others do not)
    details: Mapping[str, int | float | str] = field(default_factory=dict)  # per-format facts (C: flash/RAM bytes)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> FileEntry:
        r = _Reader(d, where)
        details = r.get("details", dict, {})
        if not all(isinstance(v, (int, float, str)) for v in details.values()):
            raise ArtifactError(f"{where}.details: values must be numbers or strings")
        return cls(r.get("path", str), r.get("format", str), r.get("batch_size", int), r.get("sha256", str),
                   r.get("bytes", int), r.get("opset", int, None), r.get("fixed_batch", bool, True), details)

    def to_dict(self) -> dict[str, Any]:
        d = dict(path=self.path, format=self.format, batch_size=self.batch_size, fixed_batch=self.fixed_batch,
                 sha256=self.sha256, bytes=self.bytes, opset=self.opset, details=dict(self.details) or None)
        return _drop_none(d)


@dataclass(frozen=True)
class Domain:
    """The box the export was checked over (data range +- a margin) and the grid used for pictures."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Domain:
        r = _Reader(d, where)
        return cls(r.numbers("low"), r.numbers("high"))

    def to_dict(self) -> dict[str, Any]:
        return dict(low=list(self.low), high=list(self.high))


@dataclass(frozen=True)
class Origin:
    """Where the model came from: trained by edgeclf, or imported (export_model / --from)."""

    kind: str  # trained | imported
    architecture: str
    parameters: int
    class_name: str = ""
    state_dict_sha256: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)  # hidden sizes, activation, output activation...

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Origin:
        r = _Reader(d, where)
        kind = r.get("kind", str)
        if kind not in ORIGINS:
            raise ArtifactError(f"{where}.kind: {kind!r}, expected one of {', '.join(ORIGINS)}")
        return cls(kind, r.get("architecture", str), r.get("parameters", int), r.get("class_name", str, ""),
                   r.get("state_dict_sha256", str, ""), r.get("details", dict, {}))

    def to_dict(self) -> dict[str, Any]:
        return dict(kind=self.kind, architecture=self.architecture, parameters=self.parameters,
                    class_name=self.class_name, state_dict_sha256=self.state_dict_sha256, details=dict(self.details))


@dataclass(frozen=True)
class Parity:
    """What was checked and under which policy. Measured differences depend on the CPU that measured them, so
    they are printed by `edgeclf export/verify`, never written here: this file must be the same on every machine."""

    checked_on: str
    policy: Mapping[str, float]
    files: Mapping[str, Mapping[str, Any]]  # path -> {rows, passed}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Parity:
        r = _Reader(d, where)
        return cls(r.get("checked_on", str), r.get("policy", dict), r.get("files", dict))

    def to_dict(self) -> dict[str, Any]:
        return dict(checked_on=self.checked_on, policy=dict(self.policy), files={k: dict(v) for k, v in self.files.items()})


def thresholds_problem(thresholds: Sequence[float], labels: int) -> str:
    """What is wrong with a multi-label model's thresholds (one probability in [0, 1] per label), or ""."""
    if len(thresholds) != labels or not all(0.0 <= float(v) <= 1.0 for v in thresholds):
        return f"thresholds {list(thresholds)}: expected {labels} probabilities in [0, 1], one per label"
    return ""


@dataclass(frozen=True)
class Manifest:
    task: str
    kind: str  # binary | multiclass | multilabel
    classes: tuple[str, ...]  # index i = probability column i (multilabel: the labels)
    features: tuple[Feature, ...]
    signature: Signature
    files: tuple[FileEntry, ...]
    domain: Domain
    origin: Origin
    parity: Parity
    data: Mapping[str, Any] = field(default_factory=dict)  # description, rows, split (for the model card)
    metrics: Mapping[str, Any] = field(default_factory=dict)  # training metrics (trained models only)
    versions: Mapping[str, str] = field(default_factory=dict)
    schema: str = SCHEMA
    thresholds: tuple[float, ...] = ()  # multilabel only: label i is predicted where P(label i) >= thresholds[i]

    @property
    def multilabel(self) -> bool:
        return self.kind == MULTILABEL

    @property
    def labels(self) -> tuple[str, ...]:
        """The label names of a multilabel model (its probability columns); () for the other kinds."""
        return self.classes if self.multilabel else ()

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def vocabularies(self) -> tuple[tuple[str, ...] | None, ...]:
        """Per feature: its categories (the input is the value's index) or None for a number."""
        return tuple(f.categories for f in self.features)

    def imputed(self) -> tuple[bool, ...]:
        """Per feature: whether the model fills NaN there (so the runtime passes NaN through)."""
        return tuple(f.fill is not None for f in self.features)

    def training_range(self) -> tuple[list[float], list[float]]:
        """(low, high) per feature: what training saw, unbounded where the manifest does not say."""
        return ([float("-inf") if f.min is None else f.min for f in self.features],
                [float("inf") if f.max is None else f.max for f in self.features])

    @property
    def onnx_files(self) -> list[FileEntry]:
        return self.files_of(ONNX.name)

    def files_of(self, fmt: str) -> list[FileEntry]:
        return sorted((f for f in self.files if f.format == fmt), key=lambda f: f.batch_size)

    def to_dict(self) -> dict[str, Any]:
        head: dict[str, Any] = {"schema": self.schema, "task": self.task, "kind": self.kind,
                                "classes": list(self.classes)}
        if self.multilabel:  # only multilabel manifests carry these keys: the others stay byte for byte as before
            head.update(labels=list(self.classes), thresholds=list(self.thresholds))
        return {
            **head,
            "features": [f.to_dict() for f in self.features], "signature": self.signature.to_dict(),
            "files": [f.to_dict() for f in self.files], "domain": self.domain.to_dict(),
            "origin": self.origin.to_dict(), "data": dict(self.data), "metrics": dict(self.metrics),
            "parity": self.parity.to_dict(), "versions": dict(self.versions),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = MANIFEST) -> Manifest:
        r = _Reader(d, where)
        schema = r.get("schema", str)
        if schema in OLD_SCHEMAS:
            raise ArtifactError(f"{where}: schema {schema!r} is from an older edgeclf; re-export the folder with "
                                f"`edgeclf export` to get {SCHEMA!r}")
        if schema != SCHEMA:
            raise ArtifactError(f"{where}: unknown schema {schema!r}, expected {SCHEMA!r}")
        features = r.get("features", list)
        kind = r.get("kind", str)
        classes = r.strings("classes")
        thresholds: tuple[float, ...] = ()
        if kind == MULTILABEL:
            if r.strings("labels") != classes:
                raise ArtifactError(f"{where}: labels {list(r.strings('labels'))} differ from classes {list(classes)}")
            thresholds = r.numbers("thresholds")
        m = cls(
            task=r.get("task", str), kind=kind, classes=classes, thresholds=thresholds,
            features=tuple(Feature.from_dict(f, f"{where}.features[{i}]") for i, f in enumerate(features)),
            signature=Signature.from_dict(r.get("signature", dict), f"{where}.signature"),
            files=tuple(FileEntry.from_dict(f, f"{where}.files[{i}]") for i, f in enumerate(r.get("files", list))),
            domain=Domain.from_dict(r.get("domain", dict), f"{where}.domain"),
            origin=Origin.from_dict(r.get("origin", dict), f"{where}.origin"),
            parity=Parity.from_dict(r.get("parity", dict), f"{where}.parity"),
            data=r.get("data", dict, {}), metrics=r.get("metrics", dict, {}), versions=r.get("versions", dict, {}),
        )
        m.validate(where)
        return m

    def validate(self, where: str = MANIFEST) -> None:
        """Cross-section consistency: the parts agree with each other."""
        k, f = len(self.classes), len(self.features)
        if k < 2 or self.kind != kind_of(k, self.multilabel):
            raise ArtifactError(f"{where}: kind {self.kind!r} with {k} classes, expected {kind_of(k, self.multilabel)!r}")
        if len(set(self.classes)) != k:
            raise ArtifactError(f"{where}: classes {list(self.classes)} has duplicates")
        self._validate_thresholds(where)
        names = self.feature_names
        if not names or len(set(names)) != f:
            raise ArtifactError(f"{where}: features {list(names)} must be a non-empty list of distinct names")
        sig = self.signature
        if sig.logits.columns != n_logits(k, self.kind) or sig.probabilities.columns != k:
            raise ArtifactError(f"{where}: outputs have {sig.logits.columns} logit and {sig.probabilities.columns} "
                                f"probability columns, expected {n_logits(k, self.kind)} and {k} for {k} classes")
        if len(self.domain.low) != f or len(self.domain.high) != f:
            raise ArtifactError(f"{where}: domain has {len(self.domain.low)}/{len(self.domain.high)} bounds, "
                                f"expected {f} (one per feature)")
        for e in self.files:
            if e.format not in FORMATS:
                raise ArtifactError(f"{where}: file {e.path!r} has unknown format {e.format!r}, expected one of {FORMATS}")
            if e.batch_size < 1:
                raise ArtifactError(f"{where}: file {e.path!r} has batch_size {e.batch_size!r}, expected an integer >= 1")
            _check_relative(e.path, where)

    def _validate_thresholds(self, where: str) -> None:
        t, k = self.thresholds, len(self.classes)
        if not self.multilabel:
            if t:
                raise ArtifactError(f"{where}: thresholds are for kind 'multilabel', this manifest is {self.kind!r}")
            return
        if problem := thresholds_problem(t, k):
            raise ArtifactError(f"{where}: {problem}")

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
        error, never a warning. The runtime builds its sessions from these bytes, so nothing can change between
        check and use; torch loaders take the path after the check."""
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
