"""The rows every exported file is checked on, eager PyTorch's outputs there, and each format's runner."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from edgeclf.export.formats import load_pt2, load_torchscript
from edgeclf.export.geometry import box_description, box_points
from edgeclf.export.parity import Outputs, ParityResult, compare, rounding_error, run_chunked
from edgeclf.export.registry import parity_runner
from edgeclf.runtime.contract import INPUT_NAME, OUTPUT_NAMES
from edgeclf.runtime.manifest import Domain, FileEntry


@dataclass
class CheckSet:
    """The rows every file is checked on (test rows + points over the domain) and eager PyTorch's outputs.

    A file exported at batch B is compared with eager PyTorch run at batch B on the same chunks and padding:
    torch's own kernels differ by a few float32 ulps between batch sizes, and that is eager's variation, not the
    export's.
    """

    model: nn.Module  # x -> (logits, probabilities), eval mode
    x: np.ndarray  # (N, F) float32
    description: str
    _refs: dict[int, Outputs] = field(default_factory=dict)
    _exact: np.ndarray | None = None

    def exact(self) -> np.ndarray | None:
        """The model's logits computed in float64 (a copy of it), or None where the module cannot run in float64."""
        if self._exact is None:
            try:
                m64 = copy.deepcopy(self.model).double()
                with torch.inference_mode():
                    self._exact = m64(torch.from_numpy(self.x).double())[0].numpy()
            except Exception:  # a module with float32-only parts: no rounding term, the plain bounds apply
                return None
        return self._exact

    def rounding(self, batch: int) -> float:
        """E for eager run at this batch size."""
        exact = self.exact()
        return 0.0 if exact is None else rounding_error(self.ref(batch)[0], exact)

    def set_reference(self, batch: int, outputs: Outputs) -> None:
        """Use outputs as the reference for files exported at this batch size (instead of running self.model)."""
        self._refs[batch] = outputs

    def ref(self, batch: int) -> Outputs:
        if batch not in self._refs:
            self._refs[batch] = run_chunked(torch_runner(self.model), self.x, batch)
        return self._refs[batch]

    @property
    def full(self) -> Outputs:
        """Eager PyTorch on all rows in one call."""
        return self.ref(len(self.x))


def check_set(model: nn.Module, rows: np.ndarray, domain: Domain, what: str = "test set") -> CheckSet:
    """rows (the test split, or the user's check data) plus points spanning domain."""
    x = np.concatenate([np.asarray(rows, np.float32), box_points(domain)])
    return CheckSet(model, x, f"{what} ({len(rows)} rows) + {box_description(domain)}, against eager PyTorch "
                              f"at each file's batch size")


def torch_runner(module: Callable[..., Any]) -> Callable[[np.ndarray], Outputs]:
    """chunk (B, F) numpy -> (logits, probabilities) numpy through a torch module (eager, TorchScript, .pt2)."""

    def run(c: np.ndarray) -> Outputs:
        with torch.inference_mode():
            logits, probs = module(torch.from_numpy(c))
        return logits.numpy(), probs.numpy()

    return run


def onnx_runner(path: Path) -> Callable[[np.ndarray], Outputs]:
    """chunk (B, F) -> (logits, probabilities) through an onnxruntime session of the file (ONNX or .ort)."""
    import onnxruntime as ort

    return runner_of_session(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))


def torchscript_runner(path: Path) -> Callable[[np.ndarray], Outputs]:
    return torch_runner(load_torchscript(path))


def pt2_runner(path: Path) -> Callable[[np.ndarray], Outputs]:
    return torch_runner(load_pt2(path))


def runner_of_session(sess: Any) -> Callable[[np.ndarray], Outputs]:
    """chunk (B, F) -> (logits, probabilities) through an onnxruntime session."""
    return lambda c: tuple(sess.run(list(OUTPUT_NAMES), {INPUT_NAME: c}))


def check_file(path: Path, entry: FileEntry, checks: CheckSet) -> ParityResult:
    got = run_chunked(parity_runner(path, entry.format), checks.x, entry.batch_size)
    return compare(entry.path, got, checks.ref(entry.batch_size), checks.rounding(entry.batch_size))
