"""ExecuTorch .pte programs: torch.export -> EXIR -> a flatbuffer program run by ExecuTorch's small C++ runtime.

Two files, each at one fixed input shape (an ExecuTorch program plans its memory for the shapes it was lowered at):
- model.pte: XNNPACK-delegated, at batch 64 (phones and other CPUs with XNNPACK: its GEMM kernels pay off over
  many rows, and a 1-row call pads 63 zero rows for a few microseconds);
- model.portable.pte: no delegate, ExecuTorch's portable kernels only, at batch 1 (the microcontroller path: one
  row of readings at a time, the smallest activation arena).
Their parity runs through ExecuTorch's own runtime (executorch.runtime), by the policy of export/parity.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from edgeclf.export.registry import ExportJob, decision_code, example_row
from edgeclf.runtime.errors import ArtifactError, InputError
from edgeclf.runtime.formats import PTE
from edgeclf.runtime.manifest import FileEntry, Manifest

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgeclf.export.parity import Outputs

FORMAT = PTE.name
EXTRA = "executorch"
XNNPACK, PORTABLE = "xnnpack", "portable"
FILES = {XNNPACK: (PTE.file, 64), PORTABLE: ("model.portable.pte", 1)}  # backend -> (file name, batch size)
METHOD = "forward"
_INSTALL = f"pip install 'edgeclf[{EXTRA}]' -c constraints.txt"


def executorch_version() -> str:
    """The installed executorch's version; InputError naming the extra to install when it is missing."""
    from importlib import metadata

    try:
        return metadata.version("executorch")
    except metadata.PackageNotFoundError:
        raise InputError(f"format 'pte' needs ExecuTorch, which is not installed: {_INSTALL}") from None


def write_pte(job: ExportJob) -> list[FileEntry]:
    """The registry's writer (runtime/formats.py PTE)."""
    return write_programs(job.folder, job.spec.model, job.spec.n_features)


def write_programs(folder: Path, model: nn.Module, n_features: int) -> list[FileEntry]:
    """model.pte (XNNPACK) and model.portable.pte into folder, each listed with its backend, batch size,
    ExecuTorch version and the positions of the two outputs in the method's output list."""
    from edgeclf.export.describe import file_entry

    version = executorch_version()
    entries = []
    for backend, (name, batch) in FILES.items():
        (folder / name).write_bytes(lower(model, n_features, batch, backend))
        entries.append(file_entry(folder, name, FORMAT, batch, details={
            "backend": backend, "executorch": version, "method": METHOD, "logits_index": 0,
            "probabilities_index": 1}))
    return entries


def lower(model: nn.Module, n_features: int, batch: int, backend: str) -> bytes:
    """The .pte bytes of model at input shape (batch, n_features); InputError naming the operator ExecuTorch
    cannot take."""
    import torch

    from edgeclf.export.formats import _exporter_reason, quiet_torch

    with quiet_torch(), silenced():
        try:
            program = torch.export.export(model, (torch.zeros(batch, n_features),), strict=False)
            for node in program.graph.nodes:  # the Python stack of the export: absolute paths, not model
                node.meta.pop("stack_trace", None)
            buffer = _to_executorch(program, backend)
        except InputError:
            raise
        except Exception as e:  # EXIR's errors vary by stage (verification, partitioning, memory planning)
            reason = _exporter_reason(e)
            op = _NOT_CORE.search(reason)
            if op:
                raise _operator_error(backend, op.group(1), "it is not in the Core ATen opset ExecuTorch lowers") from None
            raise InputError(f"ExecuTorch ({backend}) cannot lower this model: {reason}") from None
        check_operators(buffer, backend)
    return buffer


_NOT_CORE = re.compile(r"Operator (?:torch\._ops\.)?(\S+) is not in Core ATen opset")


def _operator_error(backend: str, op: str, why: str) -> InputError:
    return InputError(f"ExecuTorch ({backend}) cannot take operator {op!r}: {why}; export without --format pte, or "
                      f"replace that operation in the model")


def _to_executorch(program: torch.export.ExportedProgram, backend: str) -> bytes:
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    partitioners: list[Any] = []
    if backend == XNNPACK:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        partitioners = [XnnpackPartitioner()]
    edge = to_edge_transform_and_lower(program, partitioner=partitioners, compile_config=EdgeCompileConfig())
    return bytes(edge.to_executorch().buffer)


def operators(buffer: bytes) -> list[str]:
    """The operators a .pte program calls outside its delegates, as 'aten::name.overload'."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    loaded = deserialize_pte_binary(buffer)
    program = getattr(loaded, "program", loaded)
    ops = []
    for plan in program.execution_plan:
        for op in plan.operators:
            ops.append(f"{op.name}.{op.overload}" if op.overload else op.name)
    return ops


def check_operators(buffer: bytes, backend: str) -> None:
    """Every operator left outside a delegate has a kernel in the runtime: otherwise a one-line InputError naming
    it (ExecuTorch itself would refuse the program only when a device loads it)."""
    from executorch.extension.pybindings.portable_lib import _get_operator_names

    known = set(_get_operator_names())
    missing = [op for op in operators(buffer) if op not in known]
    if missing:
        raise _operator_error(backend, missing[0], "ExecuTorch's kernel library has no kernel for it")


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null: ExecuTorch's C++ runtime logs at info level to stderr (its threadpool probes
    the CPU on first use) and importing it makes torchao and torch log warnings; none of it is edgeclf's output.
    Errors still arrive as exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def load_method(path: Path) -> Any:
    """The program's forward method through ExecuTorch's own runtime; ArtifactError when it cannot load."""
    from edgeclf.export.formats import quiet_torch

    try:
        with quiet_torch(), silenced():
            from executorch.runtime import Runtime, Verification

            program = Runtime.get().load_program(Path(path), verification=Verification.InternalConsistency)
            return program.load_method(METHOD)
    except Exception as e:  # the runtime raises RuntimeError with its error code for any refused program
        raise ArtifactError(f"{Path(path).name}: ExecuTorch cannot load it ({' '.join(str(e).split())[:200]}); "
                            f"re-export it") from None


def runner(path: Path) -> Callable[[np.ndarray], Outputs]:
    """chunk (B, F) -> (logits, probabilities) through executorch.runtime."""
    import torch

    executorch_version()
    method = load_method(path)
    first = [True]

    def run(c: np.ndarray) -> Outputs:
        with silenced() if first[0] else contextlib.nullcontext():  # the first run starts the threadpool, which logs
            out = method.execute([torch.from_numpy(c)])
        first[0] = False
        return out[0].numpy().copy(), out[1].numpy().copy()

    return run


def entry_of(m: Manifest, backend: str) -> FileEntry | None:
    return next((e for e in m.files_of(FORMAT) if e.details.get("backend") == backend), None)


# The model card's "How to load it" (the registry's cards): the XNNPACK program from Python, the portable one from C++.
def _row(m: Manifest, suffix: str = "") -> str:
    return ", ".join(f"{v!r}{suffix}" for v in example_row(m))


def _pad_note(b: int) -> str:
    return f"the program's batch is fixed at {b}: pad with zeros, keep the first row" if b > 1 else "batch fixed at 1"


def python_snippet(m: Manifest, _: FileEntry) -> str:
    e = entry_of(m, XNNPACK)
    assert e is not None
    lo, pr, f = m.signature.logits, m.signature.probabilities, len(m.features)
    outs = ", ".join(f"out[{o.index}] = {o.name} ({e.batch_size}, {o.columns})" for o in (lo, pr))
    return f"""`pip install 'edgeclf[{EXTRA}]'` (executorch {e.details.get("executorch", "")}); the XNNPACK program:
```python
import torch
from executorch.runtime import Runtime

method = Runtime.get().load_program("artifacts/{m.task}/{e.path}").load_method("forward")
x = torch.zeros({e.batch_size}, {f})  # {_pad_note(e.batch_size)}
x[0] = torch.tensor([{_row(m)}])
out = method.execute([x])  # a list: {outs}
p = out[{pr.index}][0]
{decision_code(m)}
print(p.tolist())
```"""


def cpp_snippet(m: Manifest, _: FileEntry) -> str:
    e = entry_of(m, PORTABLE)
    assert e is not None
    pr, f, c = m.signature.probabilities, len(m.features), len(m.classes)
    classes = ", ".join(json.dumps(k) for k in m.classes)  # JSON's escapes are C's for these strings
    return f"""The portable program (no delegate), against the executorch wheel's headers and libraries (`ET` = its
folder, `python -c "import executorch; print(executorch.__path__[0])"`); examples/cpp/ has a CSV app and its Makefile.
```cpp
// g++ -std=c++17 -DC10_USING_CUSTOM_GENERATED_MACROS -DET_EVENT_TRACER_ENABLED -isystem $ET/include
//   -isystem $ET/include/executorch/runtime/core/portable_type/c10 main.cpp -o main -L$ET/lib -Wl,--no-as-needed
//   -lexecutorch -lexecutorch_kernels_optimized -lexecutorch_backend_xnnpack -lexecutorch_threadpool -Wl,-rpath,$ET/lib
#include <cstdio>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

int main() {{
  executorch::extension::Module module("artifacts/{m.task}/{e.path}");
  float x[{e.batch_size} * {f}] = {{{_row(m, "f")}}};  // {_pad_note(e.batch_size)}
  auto out = module.forward(executorch::extension::from_blob(x, {{{e.batch_size}, {f}}}));
  if (!out.ok()) return 1;
  const float* p = out->at({pr.index}).toTensor().const_data_ptr<float>();  // {pr.name} ({e.batch_size}, {c}), row 0 first
  const char* classes[] = {{{classes}}};
{_cpp_decision(m)}
  for (int i = 0; i < {c}; ++i) std::printf("%.9g%s", p[i], i + 1 < {c} ? " " : "\\n");
}}
```"""


def _cpp_decision(m: Manifest) -> str:
    """The C++ snippet's decision: the class of the highest probability, or every label's 0/1 (its threshold from
    the manifest: the .pte holds the network only)."""
    c = len(m.classes)
    if m.multilabel:
        thresholds = ", ".join(f"{t!r}f" for t in m.thresholds)
        return (f"  const float thresholds[] = {{{thresholds}}};  // manifest.json \"thresholds\"\n"
                f"  for (int i = 0; i < {c}; ++i) std::printf(\"%s=%d%s\", classes[i], p[i] >= thresholds[i] ? 1 : 0, "
                f"i + 1 < {c} ? \" \" : \"\\n\");")
    return (f"  int best = 0;\n  for (int i = 1; i < {c}; ++i) best = p[i] > p[best] ? i : best;\n"
            f"  std::puts(classes[best]);")
