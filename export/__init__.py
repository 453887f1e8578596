"""Export a model to ONNX, TorchScript and .pt2 with proven parity (edgeclf.export.pipeline), and to the opt-in edge
formats of edgeclf.runtime.formats. This module holds the export settings the CLI validates options with and the
public API, imported on first use so that `import edgeclf.export` stays cheap (no torch):

    from edgeclf.export import export_artifact, export_model, verify_artifact
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeclf.export.own_model import export_model
    from edgeclf.export.pipeline import export_artifact, verify_artifact
    from edgeclf.runtime.formats import OPTIONS as EDGE_FORMATS

DEFAULT_OPSET = 20
MIN_OPSET, MAX_OPSET = 18, 23  # torch 2.13's dynamo exporter range that onnxruntime also runs
DEFAULT_BATCH_SIZES = (1, 64, 1024, 4096, 16384)  # latency, small batches, tails, mid-size calls, throughput chunks
MAX_BATCH = 1 << 20
LAYOUT_CHOICES = ("auto", "row-major", "feature-major")  # how each ONNX graph is arranged (export.layout)

# name -> (module, attribute): resolved on first access; EDGE_FORMATS = the opt-in formats' --format values
_LAZY = {"export_artifact": ("edgeclf.export.pipeline", "export_artifact"),
         "verify_artifact": ("edgeclf.export.pipeline", "verify_artifact"),
         "export_model": ("edgeclf.export.own_model", "export_model"),
         "EDGE_FORMATS": ("edgeclf.runtime.formats", "OPTIONS")}

__all__ = ["DEFAULT_BATCH_SIZES", "DEFAULT_OPSET", "EDGE_FORMATS", "LAYOUT_CHOICES", "MAX_BATCH", "MAX_OPSET",
           "MIN_OPSET", "export_artifact", "export_model", "verify_artifact"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module), attr)
