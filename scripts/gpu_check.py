"""The CUDA check the issues ask for, as one script (run on a machine with a GPU):

train every task with --device cuda, check its accuracy target, reload the CUDA-trained checkpoint on CPU and
compare its labels with the CUDA model's on test set + grid, export it on CPU (parity against eager), and
check the runtime on it.

    python scripts/gpu_check.py OUT_DIR
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edgeclf.train.settings import pin_arithmetic

pin_arithmetic()  # before torch: the CPU side computes as `make run` does

import numpy as np  # noqa: E402
import torch  # noqa: E402

from edgeclf.export.checks import check_set  # noqa: E402
from edgeclf.export.parity import MARGIN, labels_of, margin_of  # noqa: E402
from edgeclf.export.pipeline import export_artifact, runtime_check  # noqa: E402
from edgeclf.export.subject import from_trained  # noqa: E402
from edgeclf.runtime.errors import ParityError  # noqa: E402
from edgeclf.train.api import train_task  # noqa: E402
from edgeclf.train.checkpoint import load_checkpoint  # noqa: E402
from edgeclf.train.model import WithProbabilities  # noqa: E402
from edgeclf.train.tasks import TASKS, TaskSpec  # noqa: E402


@dataclass(frozen=True)
class Check:
    """One measured check: its verdict is `passed`, computed from `detail`'s figures, never typed."""

    name: str
    passed: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.name} {'PASS' if self.passed else 'FAIL'} ({self.detail})"


def verdict(task: str, checks: list[Check]) -> tuple[str, bool]:
    """One line per task and its verdict: OK only when every check passed."""
    ok = bool(checks) and all(c.passed for c in checks)
    return f"{task:8s} " + "; ".join(map(str, checks)) + f" -> {'OK' if ok else 'FAIL'}", ok


def main(out: Path) -> int:
    if not torch.cuda.is_available():
        print(f"no CUDA device visible to torch {torch.__version__}: run this on a machine with a GPU")
        return 2
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device {torch.cuda.get_device_name(0)}")
    ok = True
    for name, spec in TASKS.items():
        try:
            line, passed = verdict(name, check_task(out, name, spec))
        except Exception as e:  # report and go on: one run must show every task
            line, passed = f"{name:8s} FAIL {type(e).__name__}: {e}", False
        print(line)
        ok &= passed
    print(f"overall: {'PASS' if ok else 'FAIL'} ({len(TASKS)} tasks)")
    return 0 if ok else 1


def check_task(out: Path, name: str, spec: TaskSpec) -> list[Check]:
    t = time.perf_counter()
    result = train_task(name, out, device="cuda")
    seconds = time.perf_counter() - t
    acc = result.metrics["test_accuracy"]
    checks = [Check("cuda-trained accuracy", acc >= spec.target_accuracy,
                    f"test {acc:.2%}, target {spec.target_accuracy:.1%}, {seconds:.2f}s")]
    subject = from_trained(load_checkpoint(out / name, name))  # on CPU
    rows = check_set(subject.model, subject.check_rows, subject.domain)
    gpu_model = WithProbabilities(result.model, spec.n_classes).eval().cuda()
    with torch.inference_mode():
        gpu_probs = gpu_model(torch.from_numpy(rows.x).cuda())[1].cpu().numpy()
    same = labels_of(gpu_probs) == labels_of(rows.full[1])
    mismatches = int((~same & (margin_of(rows.full[1]) > MARGIN)).sum())
    checks.append(Check("CPU reload vs CUDA labels", mismatches == 0,
                        f"{same.mean():.2%} agree on {len(same)} rows, {mismatches} decisive mismatches, "
                        f"proba max diff {float(np.abs(gpu_probs - rows.full[1]).max()):.1e}"))
    try:
        _, results = export_artifact(out / name, task=name)
        checks.append(Check("CPU export parity", all(results), f"{sum(map(bool, results))}/{len(results)} files"))
    except ParityError as e:  # the export refused itself: that is this check's failure, not the script's
        return [*checks, Check("CPU export parity", False, str(e))]
    rc = runtime_check(out / name)
    checks.append(Check("runtime", bool(rc.parity) and rc.test_accuracy >= spec.target_accuracy,
                        f"proba max diff {rc.parity.output('probabilities').max_abs:.1e}, "
                        f"test acc {rc.test_accuracy:.2%}"))
    return checks


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "gpu-artifacts")))
