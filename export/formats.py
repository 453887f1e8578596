"""Writers and loaders of the torch-made formats (ONNX, TorchScript, .pt2), at a fixed input shape [B, F] with two
outputs: logits and probabilities."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch
from torch import nn

from edgeclf.runtime.contract import INPUT_NAME, LOGITS, OUTPUT_NAMES, PADDING_RULE, PROBABILITIES
from edgeclf.runtime.errors import InputError

if TYPE_CHECKING:
    import onnx


@dataclass(frozen=True)
class GraphDocs:
    """What a client reading the ONNX file without the manifest needs: the graph, input and outputs explained."""

    graph: str
    input: str
    logits: str
    probabilities: str
    producer_version: str
    model_version: int

@contextlib.contextmanager
def quiet_torch() -> Iterator[None]:
    """The exporters and loaders print progress, warnings and logged tracebacks (torch.export.load logs one for a
    file that is not its kind, before raising; torch's pytree warns FutureWarning when a captured program is
    copied): keep them out of edgeclf's own output, which says what went wrong in one line."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._export", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def write_onnx(model: nn.Module, n_features: int, batch: int, opset: int, path: Path,
               metadata: dict[str, str], docs: GraphDocs, reuse: SameGraph | None = None) -> None:
    """model's graph at (batch, n_features), documented, checked and saved. reuse: the family model belongs to,
    whose graph is exported once and re-shaped for every batch size (same bytes as exporting each)."""
    import onnx

    proto = reuse.at(model, n_features, batch, opset) if reuse is not None else _exported(model, n_features, batch,
                                                                                            opset)
    _strip_provenance(proto.graph)
    del proto.metadata_props[:]
    for key, value in sorted(metadata.items()):
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "edgeclf"
    proto.producer_version = docs.producer_version
    proto.model_version = docs.model_version
    _document(proto, docs)
    onnx.checker.check_model(proto, full_check=True)
    onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    onnx.save_model(proto, str(path))


def _exported(model: nn.Module, n_features: int, batch: int, opset: int) -> onnx.ModelProto:
    example = (torch.zeros(batch, n_features),)
    with quiet_torch(), _one_registry():
        try:
            program = torch.onnx.export(
                model, example, dynamo=True, external_data=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), verbose=False,
            )
        except Exception as e:  # the exporter's own error types vary by stage (export, decomposition, translation)
            raise InputError(f"the ONNX exporter cannot convert this model: {_exporter_reason(e)}") from None
    if program is None:  # only with dynamo=False, never here
        raise RuntimeError("torch.onnx.export returned no program")
    proto: onnx.ModelProto = program.model_proto
    return proto


_REGISTRIES: dict[tuple[Any, ...], Any] = {}


@contextlib.contextmanager
def _one_registry() -> Iterator[None]:
    """torch.onnx.export builds its table of ATen -> ONNX functions (torchlib) anew on every call: most of the
    time a small model's export takes. The table depends only on the opset and an export only reads it (with no
    custom_translation_table, which edgeclf never passes), so each opset's is built once per process. A torch
    whose exporter is laid out otherwise exports without the cache."""
    try:
        from torch.onnx._internal.exporter import _registration

        cls = _registration.ONNXRegistry
        original = cls.__dict__["from_torchlib"]
        build = original.__func__
    except (ImportError, AttributeError, KeyError):
        yield
        return

    def cached(klass: type, *args: Any, **kwargs: Any) -> Any:
        key = (klass, args, tuple(sorted(kwargs.items())))
        if key not in _REGISTRIES:
            with _domains_without_parsing():
                _REGISTRIES[key] = build(klass, *args, **kwargs)
        return _REGISTRIES[key]

    cls.from_torchlib = classmethod(cached)  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        cls.from_torchlib = original  # type: ignore[method-assign]


@contextlib.contextmanager
def _domains_without_parsing() -> Iterator[None]:
    """While the table is built, onnxscript lists each traced torchlib function with its domain, which it gets by
    parsing the function's Python source into ONNX IR (~500 functions, most of the build); torch then keeps only
    the functions and their names. The domain is the function's opset's: given directly here, for the build only."""
    try:
        from onnxscript._internal import values

        traced = values.TracedOnnxFunction
        original = traced.__dict__["function_ir"]
    except (ImportError, AttributeError, KeyError):
        yield
        return
    traced.function_ir = property(lambda self: _Domain(self.opset.domain))  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        traced.function_ir = original  # type: ignore[method-assign]


@dataclass(frozen=True)
class _Domain:
    domain: str


class SameGraph:
    """A family of modules whose ONNX graphs differ between batch sizes only in the batch dimension of their
    shapes (one arrangement of an MLP, export/layout.py): exported once, at a probe batch size that no other
    dimension of the model has, then re-shaped for each batch size. The exporter's passes see only fake tensors of
    that shape, so each re-shaped graph has the bytes a direct export at its batch size gives; any other graph
    (a brought-in module) is exported at every size."""

    def __init__(self, model: nn.Module, n_features: int) -> None:
        taken = {n_features, *(d for t in [*model.parameters(), *model.buffers()] for d in t.shape)}
        self.probe = next(p for p in _PROBES if p not in taken)
        self.proto: onnx.ModelProto | None = None

    def at(self, model: nn.Module, n_features: int, batch: int, opset: int) -> onnx.ModelProto:
        import onnx

        if self.proto is None:
            self.proto = _exported(model, n_features, self.probe, opset)
        out = onnx.ModelProto()
        out.CopyFrom(self.proto)
        g = out.graph
        for value in [*g.input, *g.output, *g.value_info]:
            for d in value.type.tensor_type.shape.dim:
                if d.HasField("dim_value") and d.dim_value == self.probe:
                    d.dim_value = batch
        return out


_PROBES = (7919, 7927, 7933, 7937, 7949)  # primes: no layer width or batch size an MLP is likely to have


def _exporter_reason(e: BaseException) -> str:
    """The innermost message of the exporter's error chain: it names the operator that failed."""
    chain: list[BaseException] = []
    cause: BaseException | None = e
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(chain[-1]))  # no terminal colours in a one-line error
    return " ".join(text.split())[:300] or type(chain[-1]).__name__


def _document(proto: onnx.ModelProto, docs: GraphDocs) -> None:
    g = proto.graph
    proto.doc_string = g.doc_string = docs.graph + " " + PADDING_RULE
    text = {INPUT_NAME: docs.input, LOGITS: docs.logits, PROBABILITIES: docs.probabilities}
    for value in [*g.input, *g.output]:
        value.doc_string = text[value.name]


def _strip_provenance(graph: onnx.GraphProto) -> None:
    """The exporter annotates nodes and values with the Python stack and module paths of the export
    (absolute paths of this checkout): drop them so the bytes depend on the weights alone."""
    for node in graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for value in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        del value.metadata_props[:]
        value.doc_string = ""


def _fresh_jit_state() -> None:
    """TorchScript mangles class names by what was compiled earlier in the process (___torch_mangle_N), so
    the archive's bytes would depend on history; a fresh compilation unit makes every export reproducible."""
    torch.jit._state._python_cu = torch._C.CompilationUnit()
    torch.jit._recursive.concrete_type_store = torch.jit._recursive.ConcreteTypeStore()
    torch.jit._state._clear_class_state()


def write_torchscript(model: nn.Module, n_features: int, batch: int, path: Path) -> None:
    _fresh_jit_state()
    with quiet_torch():
        # torch.jit is deprecated since 2.10 and warns on every call; edgeclf still ships TorchScript for the
        # runtimes that load it (LibTorch, PyTorch Mobile), and the .pt2 beside it is the supported successor.
        example = torch.zeros(batch, n_features)
        traced = torch.jit.trace(model, example, strict=True)  # type: ignore[no-untyped-call]
        torch.jit.save(traced, str(path))
    _strip_debug_records(path)


def _strip_debug_records(path: Path) -> None:
    """Drop the archive's *.debug_pkl records: they hold the Python call stack of the trace (absolute paths of
    this checkout and of whichever command called us), which would make the bytes differ across machines and
    entry points. torch.jit.load does not need them (error messages just lose their Python source lines)."""
    import zipfile

    with zipfile.ZipFile(path) as src:
        records = [(info, src.read(info)) for info in src.infolist() if not info.filename.endswith(".debug_pkl")]
    # the id torch derives from all records' CRCs, debug ones included: re-derive it from what is kept
    digest = hashlib.sha256(b"".join(data for info, data in records if not info.filename.endswith("serialization_id")))
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as dst:
        for info, data in records:
            if info.filename.endswith(".data/serialization_id"):
                data = str(int(digest.hexdigest()[:32], 16)).encode()
            dst.writestr(zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0)), data)
    tmp.replace(path)


def write_pt2(model: nn.Module, n_features: int, batch: int, path: Path) -> None:
    with quiet_torch():
        program = torch.export.export(model, (torch.zeros(batch, n_features),), strict=False)
        for node in program.graph.nodes:  # the Python stack of the export: absolute paths, not model
            node.meta.pop("stack_trace", None)
        if hasattr(program, "_example_inputs"):  # a copy of the zeros we traced with: 128 KB at B=16384
            program._example_inputs = None
        torch.export.save(program, str(path))


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    with quiet_torch():
        module: torch.jit.ScriptModule = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
        return module


def load_pt2(path: Path) -> nn.Module:
    with quiet_torch():
        return torch.export.load(str(path)).module()
