"""Training choices and constants, torch-free so the CLI can offer them without importing torch."""

from __future__ import annotations

ACTIVATIONS = ("none", "relu", "tanh")
OPTIMIZERS = ("adam", "sgd")  # adam = AdamW (decoupled weight decay); sgd = SGD with momentum, never weight decay
DEVICES = ("auto", "cpu", "cuda")
SGD_MOMENTUM = 0.9
DEFAULT_SEED = 42
SPLIT_SEED = 42
TEST_SIZE = 0.2
SPLIT = f"stratified train_test_split(test_size={TEST_SIZE}, random_state={SPLIT_SEED})"
FRESH_ROWS = 20_000  # the fresh sample calibration is measured on: new points from the task's own generator
FRESH_SEED = 2026
