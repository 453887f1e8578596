"""ExportSpec: what an export needs to know of a model, whichever way it came: trained by edgeclf, or brought by
the user (export.own_model)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from edgeclf.export.geometry import domain_of
from edgeclf.runtime.contract import kind_of
from edgeclf.runtime.manifest import Domain, Feature, Origin
from edgeclf.train.checkpoint import Trained
from edgeclf.train.model import ModelConfig, WithProbabilities


@dataclass(frozen=True)
class ExportSpec:
    """The model to export and everything its files, checks and manifest are made from."""

    name: str
    classes: tuple[str, ...]
    features: tuple[Feature, ...]
    model: nn.Module  # x (B, F) -> (logits, probabilities), eval mode, CPU
    check_rows: np.ndarray  # (N, F) float32: the data parity is measured on (plus points over the domain)
    check_what: str
    domain: Domain
    origin: Origin
    data: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    labelled: tuple[np.ndarray, np.ndarray] | None = None  # (x_test, y_test) for accuracy checks, when known
    calibration_rows: np.ndarray | None = None  # training rows, for int8 calibration, when known
    thresholds: tuple[float, ...] = ()  # multilabel models only (classes are then the labels): one per label

    @property
    def kind(self) -> str:
        return kind_of(len(self.classes), bool(self.thresholds))

    @property
    def n_features(self) -> int:
        return len(self.features)


def state_dict_sha256(module: nn.Module) -> str:
    """A hash of the weights (names, shapes, dtypes and bytes, in state_dict order)."""
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


Subject = ExportSpec  # the former name, for code written against it


def from_trained(t: Trained) -> ExportSpec:
    cfg, info = t.config, t.task
    stats = info.stats
    fill = cfg.fill or (None,) * len(info.features)
    cats = cfg.categories or ((),) * len(info.features)
    features = tuple(Feature(n, "float32", stats["min"][i], stats["max"][i], stats["mean"][i], stats["std"][i],
                             fill[i], cats[i] or None) for i, n in enumerate(info.features))
    sizes = "-".join(map(str, cfg.layer_sizes))
    origin = Origin("trained", f"MLP {sizes}" + (" (standardised inputs)" if cfg.standardize else ""),
                    parameter_count(t.model), type(t.model).__name__, state_dict_sha256(t.model),
                    {"hidden": list(cfg.hidden), "activation": cfg.activation, "standardize": cfg.standardize,
                     "output_activation": _output_activation(cfg)})
    box = np.array([stats["min"], stats["max"]], np.float32)  # (2, F): the train split's range
    data = {"description": info.description, "train_rows": info.train_rows, "test_rows": info.test_rows,
            "split": info.split}
    summary = {k: v for k, v in t.metrics.items() if k != "history"}
    return ExportSpec(info.name, info.classes, features,
                      WithProbabilities(t.model, cfg.n_classes, cfg.multilabel).eval(),
                      with_empty_cells(t.data.x_test, cfg.fill), "test set" + (" (and copies with empty cells)"
                      if cfg.fill else ""), domain_of(box, relative=cfg.standardize), origin, data, summary,
                      (t.data.x_test, t.data.y_test), t.data.x_train, info.thresholds if cfg.multilabel else ())


def _output_activation(cfg: ModelConfig) -> str:
    if cfg.multilabel:
        return "sigmoid per label"
    return "sigmoid ([1-p, p])" if cfg.n_outputs == 1 else "softmax"


def with_empty_cells(x: np.ndarray, fill: tuple[float | None, ...] | None) -> np.ndarray:
    """The check rows, plus for a model that imputes a copy of them with NaN in the filled features (every
    other row one feature, cycling; then all of them at once on a quarter of the rows), so every file's parity
    is measured on the graph's NaN path too."""
    if not fill:
        return x
    cols = [j for j, v in enumerate(fill) if v is not None]
    holes = np.array(x, dtype=np.float32, copy=True)  # (N, F)
    for i in range(0, len(holes), 2):
        holes[i, cols[(i // 2) % len(cols)]] = np.nan
    holes[::4, cols] = np.nan
    return np.concatenate([x, holes])


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"edgeclf": own_version(), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}


def own_version() -> str:
    try:
        return metadata.version("edgeclf")
    except metadata.PackageNotFoundError:
        return "unknown"
