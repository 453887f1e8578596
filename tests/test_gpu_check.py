"""scripts/gpu_check.py: its verdicts are computed from the checks it measures (the CUDA run itself needs a GPU)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
from helpers import ROOT


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["gpu_check"]
    return module


def test_verdict_follows_every_check(gpu_check):
    Check = gpu_check.Check
    good = [Check("accuracy", True, "100.00%"), Check("parity", True, "4/4 files")]
    line, ok = gpu_check.verdict("circles", good)
    assert ok and line.endswith("-> OK") and line.count("PASS") == 2 and "FAIL" not in line
    for i in range(len(good)):
        checks = list(good)
        checks[i] = Check(good[i].name, False, "measured and missed")
        line, ok = gpu_check.verdict("circles", checks)
        assert not ok and line.endswith("-> FAIL") and f"{good[i].name} FAIL (measured and missed)" in line
    assert gpu_check.verdict("circles", []) == ("circles  " + " -> FAIL", False)  # nothing measured: no pass


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would run for real")
def test_without_cuda_it_says_so_and_fails(gpu_check, tmp_path, capsys):
    assert gpu_check.main(tmp_path) == 2
    assert "no CUDA device" in capsys.readouterr().out
