"""Helpers shared by the edge-format tests: the tolerance policy, gcc, and onnxruntime's mobile checker."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from helpers import skip_or_fail

ATOL = 1e-5  # GUIDE §3: probabilities |a-b| <= 1e-5; logits |a-b| <= 1e-5 + 1e-5 |ref|
MARGIN = 1e-4
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]
SANITIZE = [*STRICT, "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]


def rows_of(task: str) -> np.ndarray:
    """A committed artifact's check rows: its kept test split plus points over the manifest's domain (10% beyond
    it): a 41x41 grid for two features, 1681 uniform points otherwise."""
    import json

    from helpers import ARTIFACTS

    from edgeclf.train.checkpoint import load_checkpoint

    domain = json.loads((ARTIFACTS / task / "manifest.json").read_text())["domain"]
    lo, hi = np.array(domain["low"]), np.array(domain["high"])
    lo, hi = lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)
    if len(lo) == 2:
        g = np.linspace(lo, hi, 41)  # (41, 2)
        box = np.stack(np.meshgrid(g[:, 0], g[:, 1]), axis=-1).reshape(-1, 2)  # (1681, 2)
    else:
        box = np.random.default_rng(0).uniform(lo, hi, (1681, len(lo)))
    return np.concatenate([load_checkpoint(ARTIFACTS / task).data.x_test, box]).astype(np.float32)


def margin(proba: np.ndarray) -> np.ndarray:
    top2 = np.sort(proba.astype(np.float64), axis=1)[:, -2:]  # (N, 2)
    return np.asarray(top2[:, 1] - top2[:, 0])


def check_policy(logits: np.ndarray, proba: np.ndarray, ref_logits: np.ndarray, ref_proba: np.ndarray,
                 labels: np.ndarray | None = None) -> dict[str, float]:
    """Assert the tolerance policy; return the figures (max diffs, label agreement) for the report."""
    assert logits.shape == ref_logits.shape and proba.shape == ref_proba.shape
    dz = np.abs(logits.astype(np.float64) - ref_logits)
    dp = np.abs(proba.astype(np.float64) - ref_proba)
    bound = ATOL + ATOL * np.abs(ref_logits.astype(np.float64))
    got = proba.argmax(axis=1) if labels is None else labels
    same = got == ref_proba.argmax(axis=1)
    decisive = margin(ref_proba) > MARGIN
    figures = {"logits_max_abs": float(dz.max()), "logits_max_excess": float((dz - bound).max()),
               "proba_max_abs": float(dp.max()), "label_agreement": float(same.mean()),
               "mismatches_above_margin": int((~same & decisive).sum())}
    assert (dz <= bound).all(), figures
    assert (dp <= ATOL).all(), figures
    assert figures["mismatches_above_margin"] == 0, figures
    return figures


def need_gcc() -> None:
    if shutil.which("gcc") is None:
        skip_or_fail("gcc not found: the C header tests need a C99 compiler")


def gcc(sources: list[Path], out: Path, includes: list[Path], flags: list[str]) -> Path:
    need_gcc()
    cmd = ["gcc", *flags, *[f"-I{i}" for i in includes], *map(str, sources), "-lm", "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr}"
    return out


def run_program(exe: Path, stdin: str) -> str:
    # ASan's leak checker needs ptrace, which containers often forbid; leaks are not what we test here
    env = {"ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    done = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "runtime error" not in done.stderr, done.stderr  # UBSan's report
    return done.stdout


def csv_rows(x: np.ndarray) -> str:
    """float32 rows as %.9g text: parses back to the same float32 in C (and Python)."""
    return "".join(",".join(f"{float(v):.9g}" for v in row) + "\n" for row in x.astype(np.float32))


def mobile_usability(onnx_path: Path) -> dict[str, str]:
    """Run onnxruntime's mobile usability checker on one file and parse its verdict lines
    'Model should perform well with EP as is: YES|NO|MAYBE' into {"NNAPI": .., "CoreML NeuralNetwork": ..,
    "CoreML MLProgram": ..}; the full log under "log"."""
    done = subprocess.run(
        [sys.executable, "-m", "onnxruntime.tools.check_onnx_model_mobile_usability", str(onnx_path)],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    found = dict(re.findall(r"Model should perform well with (.+?) as is: (YES|NO|MAYBE)", text))
    assert "NNAPI" in found and any(k.startswith("CoreML") for k in found), f"no verdicts in:\n{text}"
    found["log"] = text
    return found


def build_cpp(src: Path, out: Path) -> Path:
    """Build a C++ program with examples/cpp/Makefile's flags against the installed executorch (g++, -Werror)."""
    from helpers import ON_CI, ROOT, skip_or_fail

    if shutil.which("g++") is None:
        skip_or_fail("g++ not found: the ExecuTorch C++ tests need a C++17 compiler", required=ON_CI)
    cmd = ["make", "-s", "-C", str(ROOT / "examples" / "cpp"), f"PYTHON={sys.executable}", f"SRC={src}",
           f"OUT={out}", "CXXFLAGS=-O2 -Wall -Wextra -Werror"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return out
