"""Training (edgeclf.train): task registry, tables, the MLP, the training loop, checkpoints, calibration.

    from edgeclf.train import train_data, train_task

Both are imported on first use (torch with them), so `import edgeclf.train` stays cheap. For bytes that are the
same on every x86-64 CPU, call edgeclf.train.settings.pin_arithmetic() before torch is imported (the CLI's train
and run commands do)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeclf.train.api import train_data, train_task

__all__ = ["train_data", "train_task"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("edgeclf.train.api"), name)
