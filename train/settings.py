"""Training choices and constants, torch-free so the CLI can offer them without importing torch."""

from __future__ import annotations

ACTIVATIONS = ("none", "relu", "tanh")
OPTIMIZERS = ("adam", "sgd")  # adam = AdamW (decoupled weight decay); sgd = SGD with momentum, never weight decay
DEVICES = ("auto", "cpu", "cuda")
SGD_MOMENTUM = 0.9
DEFAULT_SEED = 42
SPLIT_SEED = 42
TEST_SIZE = 0.2
VALIDATION = 0.15  # early stopping's share of the training rows (stratified), held out of the gradient steps
SPLIT = f"stratified train_test_split(test_size={TEST_SIZE}, random_state={SPLIT_SEED})"
FRESH_ROWS = 20_000  # the fresh sample calibration is measured on: new points from the task's own generator
FRESH_SEED = 2026

# torch picks its CPU kernels (AVX-512, AVX2, or plain) and MKL its code path by the CPU it runs on, and the
# same training then ends with weights up to 4e-3 apart on two machines. Both read these when torch is imported.
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
PORTABLE_THREADS = 1  # reductions split across threads sum in another order


def pin_arithmetic() -> bool:
    """Make torch compute the same floats on every x86-64 CPU: set PORTABLE_ENV before torch is imported (opt out
    with EDGECLF_PORTABLE=0). Returns whether the pin is in force; too late once torch is imported."""
    import os
    import sys

    if os.environ.get("EDGECLF_PORTABLE", "1") == "0":
        return False
    if "torch" not in sys.modules:
        os.environ.update(PORTABLE_ENV)
    return all(os.environ.get(k) == v for k, v in PORTABLE_ENV.items())
