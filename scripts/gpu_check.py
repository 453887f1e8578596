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

import numpy as np
import torch

from edgeclf.export.graph import ExportModel
from edgeclf.export.parity import MARGIN, labels_of, margin_of
from edgeclf.export.pipeline import check_set, domain_of, export_artifact, load_eager, runtime_check
from edgeclf.runtime.errors import ParityError
from edgeclf.train.api import train_task
from edgeclf.train.tasks import TASKS, TaskSpec


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
    cpu_model, cfg, _ = load_eager(out / name, name)  # on CPU
    data = spec.dataset()
    rows = check_set(cpu_model, data.x_test, domain_of(data.x_all))
    gpu_model = ExportModel(result.model, cfg.n_classes).eval().cuda()
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
                        f"parity needs {rc.parity.needed_atol:.1e}, test acc {rc.test_accuracy:.2%}"))
    return checks


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "gpu-artifacts")))
