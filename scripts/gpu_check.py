"""The CUDA check the issues ask for, as one script (run on a machine with a GPU):

train every task with --device cuda, check its accuracy target, reload the CUDA-trained checkpoint on CPU and
compare its labels with the CUDA model's on test set + grid, export it on CPU (parity against eager), and
check the runtime on it.

    python scripts/gpu_check.py OUT_DIR
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from edgeclf.export.graph import ExportModel
from edgeclf.export.parity import MARGIN, labels_of, margin_of
from edgeclf.export.pipeline import check_set, domain_of, export_artifact, load_eager, runtime_check
from edgeclf.train.api import train_task
from edgeclf.train.tasks import TASKS, TaskSpec


def main(out: Path) -> int:
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device {torch.cuda.get_device_name(0)}")
    ok = True
    for name, spec in TASKS.items():
        try:
            ok &= check_task(out, name, spec)
        except Exception as e:  # report and go on: one run must show every task
            print(f"{name:8s} FAIL {type(e).__name__}: {e}")
            ok = False
    return 0 if ok else 1


def check_task(out: Path, name: str, spec: TaskSpec) -> bool:
    t = time.perf_counter()
    result = train_task(name, out, device="cuda")
    seconds = time.perf_counter() - t
    acc = result.metrics["test_accuracy"]
    cpu_model, cfg, _ = load_eager(out / name, name)  # on CPU
    data = spec.dataset()
    checks = check_set(cpu_model, data.x_test, domain_of(data.x_all))
    gpu_model = ExportModel(result.model, cfg.n_classes).eval().cuda()
    with torch.inference_mode():
        gpu_probs = gpu_model(torch.from_numpy(checks.x).cuda())[1].cpu().numpy()
    same = labels_of(gpu_probs) == labels_of(checks.full[1])
    decisive = margin_of(checks.full[1]) > MARGIN
    max_diff = float(np.abs(gpu_probs - checks.full[1]).max())
    export_artifact(out / name, task=name)
    rc = runtime_check(out / name)
    passed = acc >= spec.target_accuracy and bool((same | ~decisive).all()) and bool(rc.parity)
    print(f"{name:8s} cuda-trained test acc {acc:.2%} (target {spec.target_accuracy:.1%}) in {seconds:.2f}s; "
          f"CPU reload vs CUDA labels {same.mean():.2%} agree on {len(same)} rows "
          f"({int((~same & decisive).sum())} decisive mismatches), proba max diff {max_diff:.1e}; "
          f"CPU export parity PASS, runtime acc {rc.test_accuracy:.2%} -> {'OK' if passed else 'FAIL'}")
    return passed


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "gpu-artifacts")))
