"""The rows every exported file is checked on, eager PyTorch's outputs there, and each format's runner."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from edgeclf.export.formats import load_pt2, load_torchscript, quiet_torch
from edgeclf.export.geometry import box_description, box_points
from edgeclf.export.parity import Outputs, ParityResult, compare, rounding_error, run_chunked
from edgeclf.export.registry import parity_runner
from edgeclf.runtime.contract import INPUT_NAME, OUTPUT_NAMES
from edgeclf.runtime.manifest import Domain, FileEntry

# A batch-1 file runs one call per row: on the 40,000 rows of a 201x201 grid that is most of an export's time, for
# the same arithmetic the first rows already exercise. Such files are checked on the first ROW_BY_ROW_DATA check rows
# and on about ROW_BY_ROW_BOX points spread evenly over the box (every k-th one); every other file on every row.
ROW_BY_ROW_DATA = 512
ROW_BY_ROW_BOX = 512


@dataclass
class CheckSet:
    """The rows every file is checked on (check rows + points over the domain) and eager PyTorch's outputs.

    A file exported at batch B is compared with eager PyTorch run at batch B on the same chunks and padding:
    torch's own kernels differ by a few float32 ulps between batch sizes, and that is eager's variation, not the
    export's. A batch-1 file is checked on a subset of the rows (`rows`); its reference is eager on those rows.
    """

    model: nn.Module  # x -> (logits, probabilities), eval mode
    x: np.ndarray  # (N, F) float32: the n_data check rows, then the points over the box
    description: str
    n_data: int = -1  # how many of x's rows are check rows (-1: all of them)
    reference: Outputs | None = None  # one reference for every batch size (an imported model's traced program)
    thresholds: tuple[float, ...] = ()  # a multi-label model's: labels are compared per label
    _refs: dict[int, Outputs] = field(default_factory=dict)
    _exact: np.ndarray | None = None

    def rows(self, batch: int) -> np.ndarray | slice:
        """The rows (indices into x) a file of this batch size is checked on."""
        if batch > 1:
            return slice(None)
        n_data = len(self.x) if self.n_data < 0 else self.n_data
        return np.concatenate([np.arange(min(n_data, ROW_BY_ROW_DATA)), np.arange(n_data, len(self.x), self.step)])

    @property
    def step(self) -> int:
        """A batch-1 file is checked on every step-th point of the box."""
        n_box = len(self.x) - (len(self.x) if self.n_data < 0 else self.n_data)
        return max(1, -(-n_box // ROW_BY_ROW_BOX))

    def exact(self) -> np.ndarray | None:
        """The model's logits computed in float64 (a copy of it), or None where the module cannot run in float64."""
        if self._exact is None:
            try:
                with quiet_torch():  # copying a captured (.pt2) program warns FutureWarning from torch's pytree
                    m64 = copy.deepcopy(self.model).double()
                with torch.inference_mode(), one_thread():
                    self._exact = m64(torch.from_numpy(self.x).double())[0].numpy()
            except Exception:  # a module with float32-only parts: no rounding term, the plain bounds apply
                return None
        return self._exact

    def rounding(self, batch: int) -> float:
        """E for eager run at this batch size, on the rows a file of that size is checked on."""
        exact = self.exact()
        return 0.0 if exact is None else rounding_error(self.ref(batch)[0], exact[self.rows(batch)])

    def ref(self, batch: int) -> Outputs:
        """Eager PyTorch at this batch size on `rows(batch)`, computed once per batch size."""
        if batch not in self._refs:
            rows = self.rows(batch)
            if self.reference is not None:
                self._refs[batch] = (self.reference[0][rows], self.reference[1][rows])
            else:
                with one_thread():
                    self._refs[batch] = run_chunked(torch_runner(self.model), self.x[rows], batch)
        return self._refs[batch]

    @property
    def full(self) -> Outputs:
        """Eager PyTorch on all rows in one call."""
        return self.ref(len(self.x))

    def check(self, name: str, fn: Callable[[np.ndarray], Outputs], batch: int) -> ParityResult:
        """fn, a function of fixed batch size, against eager on the rows a file of that size is checked on; the
        worst row reported as an index into x."""
        rows = self.rows(batch)
        with one_thread():
            got = run_chunked(fn, self.x[rows], batch)
        result = compare(name, got, self.ref(batch), self.rounding(batch), self.thresholds)
        if isinstance(rows, slice):
            return result
        return replace(result, outputs=tuple(replace(o, worst_row=int(rows[o.worst_row])) for o in result.outputs))


def check_set(model: nn.Module, rows: np.ndarray, domain: Domain, what: str = "test set",
              thresholds: Sequence[float] = ()) -> CheckSet:
    """rows (the test split, or the user's check data) plus points spanning domain; thresholds: a multi-label
    model's, one per label."""
    x = np.concatenate([np.asarray(rows, np.float32), box_points(domain)])
    checks = CheckSet(model, x, "", len(rows), thresholds=tuple(thresholds))
    checks.description = (f"{what} ({len(rows)} rows) + {box_description(domain)}, against eager PyTorch at each "
                          f"file's batch size; batch-1 files (run row by row) on the first "
                          f"{min(len(rows), ROW_BY_ROW_DATA):,} {what} rows and {_every(checks.step)} of the box "
                          f"({len(checks.x[checks.rows(1)]):,} rows)")
    return checks


def _every(k: int) -> str:
    if k == 1:
        return "every point"
    suffix = "th" if 11 <= k % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"every {k}{suffix} point"


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """A check runs a small model over ~40,000 rows in chunks: waking and joining torch's intra-op threads then
    costs more than they save (many times more on a busy machine), so eager and the files run on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # see one_thread
    return runner_of_session(ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))


def torchscript_runner(path: Path) -> Callable[[np.ndarray], Outputs]:
    return torch_runner(load_torchscript(path))


def pt2_runner(path: Path) -> Callable[[np.ndarray], Outputs]:
    return torch_runner(load_pt2(path))


def runner_of_session(sess: Any) -> Callable[[np.ndarray], Outputs]:
    """chunk (B, F) -> (logits, probabilities) through an onnxruntime session."""
    return lambda c: tuple(sess.run(list(OUTPUT_NAMES), {INPUT_NAME: c}))


def check_file(path: Path, entry: FileEntry, checks: CheckSet) -> ParityResult:
    return checks.check(entry.path, parity_runner(path, entry.format), entry.batch_size)
