"""Every file format an export writes, one `Format` each: the one place a format is registered.

An entry holds the names the manifest, the CLI and the runtime use, the file name, and where the format's writer,
parity runner and model-card snippets live, as "module:function" strings. This module is torch-free (the runtime
validates manifests and picks files with it) and imports none of them: export/registry.py imports the writer and
the runner when an export or a check needs them, report/howto.py the snippets when a card is written. Everything
else (the manifest's FORMATS, the CLI's --format choices and help, the fixed file names, which files are
parity-checked, the card's sections) is derived from FORMATS below. docs/architecture.md says how to add one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

_HOWTO = "edgeclf.report.howto"


@dataclass(frozen=True)
class Format:
    name: str  # the manifest's "format" of its files
    file: str  # its file name; "{batch}" is one file per ONNX batch size
    write: str  # "module:function": (ExportJob) -> list[FileEntry] (export/registry.py)
    runner: str = ""  # "module:function": path -> chunk runner, checked against eager; "" = not parity-checked
    cards: tuple[tuple[str, str], ...] = ()  # the card's "How to load it": (heading, "module:function(m, entry)")
    label: str = ""  # what a file of it is called in messages
    option: str = ""  # opt-in formats: the CLI's --format value; "" = written by every export
    help: str = ""  # opt-in formats: what --format OPTION adds, for the CLI's help
    loadable: bool = False  # edgeclf.runtime.Classifier runs it
    extra: str = ""  # the edgeclf extra whose package (of the same name) its writer needs beyond [train]
    unchecked: tuple[str, str] = ("", "")  # no runner: why, as `edgeclf info`'s parity cell and the card's sentence

    def file_name(self, batch: int) -> str:
        return self.file.format(batch=batch)


ONNX = Format("onnx", "model.b{batch}.onnx", "edgeclf.export.pipeline:write_onnx_files",
              "edgeclf.export.checks:onnx_runner", loadable=True, label="ONNX",
              cards=(("Browser (onnxruntime-web)", f"{_HOWTO}:browser"), ("Node.js (onnxruntime-node)", f"{_HOWTO}:node"),
                     ("onnxruntime C API", f"{_HOWTO}:c_api"), ("OpenCV DNN", f"{_HOWTO}:opencv")))
TORCHSCRIPT = Format("torchscript", "model.torchscript.pt", "edgeclf.export.pipeline:write_torchscript_file",
                     "edgeclf.export.checks:torchscript_runner", label="TorchScript",
                     cards=(("TorchScript (torch.jit.load)", f"{_HOWTO}:torch_snippet"),))
PT2 = Format("torch.export", "model.pt2", "edgeclf.export.pipeline:write_pt2_file", "edgeclf.export.checks:pt2_runner",
             label="torch.export", cards=(("torch.export (.pt2)", f"{_HOWTO}:torch_snippet"),))
C_HEADER = Format("c", "model.h", "edgeclf.export.edge:write_c", label="C header", option="c", help="a C99 header, model.h",
                  cards=(("C header", f"{_HOWTO}:c_header"),),
                  unchecked=("not run (C)", "not run at export (C): edgeclf's tests (`tests/test_c_header.py`) compile "
                             "it with gcc and hold it to this policy against eager PyTorch"))
ORT = Format("ort", "model.b{batch}.ort", "edgeclf.export.edge:write_ort_files", "edgeclf.export.checks:onnx_runner",
             loadable=True, label=".ort", option="ort", help="onnxruntime mobile format")
INT8 = Format("onnx-int8", "model.b{batch}.int8.onnx", "edgeclf.export.edge:write_int8", loadable=True,
              label="int8 ONNX", option="int8", help="quantised ONNX",
              unchecked=("int8 report", "int8: not held to the float32 policy; its report (size, accuracy, label "
                         "agreement) is the claim"))
# two files: model.pte (XNNPACK, batch 64) and model.portable.pte (portable kernels, batch 1): export/pte.py
PTE = Format("pte", "model.pte", "edgeclf.export.pte:write_pte", "edgeclf.export.pte:runner", label="ExecuTorch",
             option="pte", help="ExecuTorch programs: XNNPACK model.pte, portable model.portable.pte", extra="executorch",
             cards=(("ExecuTorch (Python, executorch.runtime)", "edgeclf.export.pte:python_snippet"),
                    ("ExecuTorch (C++)", "edgeclf.export.pte:cpp_snippet")))

# in the order an export writes them (and lists them in the manifest): ONNX first, the rest derive from it
FORMATS: tuple[Format, ...] = (ONNX, TORCHSCRIPT, PT2, C_HEADER, ORT, INT8, PTE)
NAMES = tuple(f.name for f in FORMATS)
OPT_IN = tuple(f for f in FORMATS if f.option)
OPTIONS = tuple(f.option for f in OPT_IN)  # the CLI's --format choices


def installed(fmt: Format) -> bool:
    """Whether this Python can write the format (its extra's package is importable; checked, not imported)."""
    if not fmt.extra:
        return True
    import importlib.util

    try:
        return importlib.util.find_spec(fmt.extra) is not None
    except (ImportError, ValueError):
        return False


def named(name: str) -> Format | None:
    """The format a manifest entry names, or None for an unknown one."""
    return next((f for f in FORMATS if f.name == name), None)


def by_option(option: str) -> Format | None:
    return next((f for f in OPT_IN if f.option == option), None)


def options_of(names: Sequence[str]) -> tuple[str, ...]:
    """The opt-in --format options for a list of format names as a user writes them (the API's formats=[...]):
    an option ("int8") or a manifest name ("onnx-int8"); the formats every export writes ("onnx", "torchscript",
    "torch.export" or "pt2") are accepted and need nothing. An unknown name is returned unchanged, so that the one
    check (export.registry.selected) refuses it with the list of choices."""
    always = {f.name for f in FORMATS if not f.option} | {"pt2"}
    out = []
    for name in names:
        fmt = by_option(name) or named(name)
        if fmt is not None and fmt.option:
            out.append(fmt.option)
        elif name not in always:
            out.append(name)
    return tuple(dict.fromkeys(out))


def unchecked(name: str) -> tuple[str, str]:
    """Why a file of the named format has no parity result: (`edgeclf info`'s cell, the card's sentence); empty
    strings for a parity-checked or unknown format."""
    fmt = named(name)
    return fmt.unchecked if fmt is not None else ("", "")
