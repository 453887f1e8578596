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
from typing import TYPE_CHECKING, Iterator

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
def _quiet_torch() -> Iterator[None]:
    """The exporters print progress and warnings: keep them out of edgeclf's own output."""
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
               metadata: dict[str, str], docs: GraphDocs) -> None:
    import onnx

    example = (torch.zeros(batch, n_features),)
    with _quiet_torch():
        try:
            program = torch.onnx.export(
                model, example, dynamo=True, external_data=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), verbose=False,
            )
        except Exception as e:  # the exporter's own error types vary by stage (export, decomposition, translation)
            raise InputError(f"the ONNX exporter cannot convert this model: {_exporter_reason(e)}") from None
    if program is None:  # only with dynamo=False, never here
        raise RuntimeError("torch.onnx.export returned no program")
    proto = program.model_proto
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
    with _quiet_torch():
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
    with _quiet_torch():
        program = torch.export.export(model, (torch.zeros(batch, n_features),), strict=False)
        for node in program.graph.nodes:  # the Python stack of the export: absolute paths, not model
            node.meta.pop("stack_trace", None)
        if hasattr(program, "_example_inputs"):  # a copy of the zeros we traced with: 128 KB at B=16384
            program._example_inputs = None
        torch.export.save(program, str(path))


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    with _quiet_torch():
        module: torch.jit.ScriptModule = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
        return module


def load_pt2(path: Path) -> nn.Module:
    with _quiet_torch():
        return torch.export.load(str(path)).module()
