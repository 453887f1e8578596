"""The .ort writer: onnxruntime's flatbuffer format for its minimal and mobile builds, one file per ONNX
batch size, plus the required-operators config a minimal build is compiled with.

It does what `python -m onnxruntime.tools.convert_onnx_models_to_ort` does with its defaults (fixed
optimisation style, level "all", the NCHWc transformer off so the file is not specific to x86 AVX layouts,
QDQ int8 kernels off), without its prints and with file names we choose. An .ort file is read only by the
onnxruntime version line that wrote it (the format has no forward compatibility): the manifest records it.

The .ort bytes are not reproducible: two conversions of one file have the same size, content and outputs, with
one section's entries in another order. The config file is reproducible.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path

from edgeclf.runtime.errors import InputError

CONFIG_NAME = "required_operators.config"
_ONNX_NAME = re.compile(r"model\.b\d+\.onnx")


def _sources(onnx_path: Path) -> list[Path]:
    if onnx_path.is_dir():
        found = sorted((p for p in onnx_path.iterdir() if _ONNX_NAME.fullmatch(p.name)), key=lambda p: p.name)
        if not found:
            raise InputError(f"no model.bB.onnx file in {onnx_path}: export the ONNX files first")
        return found
    if not onnx_path.is_file() or onnx_path.suffix != ".onnx":
        raise InputError(f"{onnx_path} is not an ONNX file or a folder of model.bB.onnx files")
    return [onnx_path]


def _convert_one(src: Path, dst: Path) -> None:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(dst)
    so.add_session_config_entry("session.save_model_format", "ORT")
    so.add_session_config_entry("session.qdqisint8allowed", "0")
    # creating the session is what writes the optimised graph to optimized_model_filepath
    ort.InferenceSession(str(src), sess_options=so, providers=["CPUExecutionProvider"],
                         disabled_optimizers=["NchwcTransformer"])


def _write_config(ort_files: list[Path], dst: Path) -> None:
    """The operators config from the .ort files, with the file names alone in its comment lines (the tool
    writes absolute paths, which would tie the bytes to the folder we wrote in)."""
    from onnxruntime.tools.ort_format_model import create_config_from_models

    log = logging.getLogger("ort_format_model.utils")  # logs "Created config in <temp path>" at INFO
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        create_config_from_models(ort_files, dst, enable_type_reduction=False)
    finally:
        log.setLevel(level)
    lines = dst.read_text().splitlines()
    named = {str(p): p.name for p in ort_files}
    dst.write_text("".join((f"# - {named.get(line[4:], line[4:])}" if line.startswith("# - ") else line) + "\n"
                           for line in lines))


def write_ort(onnx_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Convert model.bB.onnx (one file, or every one in a folder) to out_dir/model.bB.ort, and write
    out_dir/required_operators.config. Returns the written paths, .ort files first, config last. Each file is
    written in a temp folder inside out_dir and renamed into place."""
    sources = _sources(Path(onnx_path))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".ort-") as tmp:
        staged = [Path(tmp) / src.with_suffix(".ort").name for src in sources]
        for src, dst in zip(sources, staged):
            _convert_one(src, dst)
        _write_config(staged, Path(tmp) / CONFIG_NAME)
        written = []
        for path in [*staged, Path(tmp) / CONFIG_NAME]:
            final = out / path.name
            shutil.move(str(path), final)  # same filesystem: a rename
            written.append(final)
    return written
