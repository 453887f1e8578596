"""The opt-in edge formats of an export: a C99 header (microcontrollers), .ort (onnxruntime mobile/minimal builds)
and int8 (QDQ). Written beside the ONNX files they derive from, listed in the same manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgeclf.export import DEFAULT_OPSET
from edgeclf.export.describe import file_entry
from edgeclf.export.layout import AS_TRACED, mlp_of
from edgeclf.export.registry import ExportJob
from edgeclf.runtime.errors import InputError
from edgeclf.runtime.formats import C_HEADER, INT8, ONNX, ORT
from edgeclf.runtime.manifest import FileEntry, file_sha256, onnx_metadata
from edgeclf.train.model import OneHot, Standardize


def write_c(job: ExportJob) -> list[FileEntry]:
    from edgeclf.export.c_header import c_header, check_prefix, graph_layers, mlp_layers

    s, prefix = job.spec, job.c_prefix
    check_prefix(prefix)
    net: nn.Module = s.model.net  # type: ignore[assignment]
    mean = std = fill = None
    if isinstance(net, nn.Sequential) and len(net) and isinstance(net[0], Standardize):
        mean, std = net[0].mean.numpy(), net[0].std.numpy()  # applied first in C, exactly as in the graph
        fill = [f.fill for f in s.features] if net[0].fill is not None else None
        net = net[1:]
    categories = None
    if isinstance(net, nn.Sequential) and len(net) and isinstance(net[0], OneHot):
        categories, net = list(net[0].categories), net[1:]  # expanded first in C, exactly as in the graph
    try:
        layers, activation = mlp_layers(net)
    except InputError:
        if s.origin.kind == "trained":
            raise
        layers, activation = graph_layers(_first_onnx(job))  # a brought-in module or .pt2: read from its graph
    header = c_header(layers, activation, features=[f.name for f in s.features], classes=s.classes, prefix=prefix,
                      mean=mean, std=std, thresholds=s.thresholds or None, fill=fill,
                      categories=categories)
    header.write(job.folder / C_HEADER.file)
    return [file_entry(job.folder, C_HEADER.file, C_HEADER.name, 1,
                       details={"prefix": prefix, "flash_bytes": header.flash_bytes, "ram_bytes": header.ram_bytes})]


def _first_onnx(job: ExportJob) -> Path:
    """The float ONNX file of the smallest batch size this export wrote (written before the edge formats)."""
    return job.folder / min(job.files_of(ONNX), key=lambda e: e.batch_size).path


def write_ort_files(job: ExportJob) -> list[FileEntry]:
    import onnxruntime

    from edgeclf.export.ort_format import CONFIG_NAME, write_ort

    folder = job.folder
    written = write_ort(folder, folder)
    config = folder / CONFIG_NAME
    details = {"onnxruntime": onnxruntime.__version__, "required_operators": CONFIG_NAME,
               "required_operators_sha256": file_sha256(config),
               "note": "read only by the onnxruntime version line that wrote it (no forward compatibility)"}
    batches = {ORT.file_name(e.batch_size): e for e in job.files_of(ONNX)}
    return [file_entry(folder, p.name, ORT.name, batches[p.name].batch_size, batches[p.name].opset, details=details)
            for p in written if p.name in batches]


def write_int8(job: ExportJob) -> list[FileEntry]:
    """One QDQ int8 copy per ONNX file, calibrated on the training rows (the check rows for an imported model);
    not held to the parity policy: its report (sizes, accuracy, agreement, recall) is the claim."""
    import tempfile

    import onnxruntime as ort

    from edgeclf.export.describe import graph_docs
    from edgeclf.export.formats import SameGraph, write_onnx
    from edgeclf.export.int8 import int8_report, quantize_int8

    s, folder = job.spec, job.folder
    calibration = s.calibration_rows if s.calibration_rows is not None else s.check_rows
    traced_family = SameGraph(s.model, s.n_features) if mlp_of(s.model) is not None else None
    entries = []
    names = [f.name for f in s.features]
    for e in job.files_of(ONNX):
        src, dst = folder / e.path, folder / INT8.file_name(e.batch_size)
        # quantised from the module as traced, not from the float file's arrangement (export/layout.py): folding
        # 1/std into the first layer leaves its input in raw units, whose one per-tensor uint8 scale would
        # flatten every feature with a small range, and the doubled binary logits layer would round -z and z apart
        with tempfile.TemporaryDirectory(prefix="edgeclf-int8-") as tmp:
            traced = Path(tmp) / e.path
            write_onnx(s.model, s.n_features, e.batch_size, e.opset or DEFAULT_OPSET, traced,
                       onnx_metadata(s.name, s.kind, s.classes, names, e.batch_size), graph_docs(s),
                       reuse=traced_family)
            quantize_int8(traced, dst, calibration)
        f32, i8 = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (src, dst))
        if s.labelled is not None:
            x_test, y_test = s.labelled
            reference = "test split labels"
        else:  # an imported model without labels: accuracy means agreement with its own float32 labels
            x_test = s.check_rows
            y_test = f32_labels(f32, x_test, e.batch_size, s.thresholds)
            reference = "the float32 model's labels (no labelled data)"
        report = int8_report(f32, i8, x_test, y_test, job.check_rows, s.classes, float_path=src, int8_path=dst,
                             thresholds=s.thresholds)
        entries.append(file_entry(folder, dst.name, INT8.name, e.batch_size, e.opset,
                                  details={**_flat(report), "test_accuracy.reference": reference,
                                           "layout": AS_TRACED}))
    return entries


def f32_labels(session: Any, x: np.ndarray, batch: int, thresholds: tuple[float, ...] = ()) -> np.ndarray:
    """The float32 file's decisions: class indices (N,), or a multi-label model's (N, L) 0/1 matrix."""
    from edgeclf.export.checks import runner_of_session
    from edgeclf.export.int8 import decide
    from edgeclf.export.parity import run_chunked

    return decide(run_chunked(runner_of_session(session), x, batch)[1], thresholds)


def _flat(report: dict[str, Any], prefix: str = "") -> dict[str, int | float | str]:
    """The int8 report as flat manifest details ("recall.blob0.delta": ...): sizes, accuracy, agreement, recall."""
    out: dict[str, int | float | str] = {}
    for key, value in report.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, float):
            out[prefix + key] = round(value, 6)
        elif isinstance(value, (int, str)) and not isinstance(value, bool):
            out[prefix + key] = value
    return out
