"""The MLP classifier and its frozen config; the model is only ever rebuilt from the config."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from edgeclf.runtime.errors import InputError

ACTIVATIONS = ("none", "relu", "tanh")


@dataclass(frozen=True)
class ModelConfig:
    task: str
    n_features: int
    n_classes: int
    hidden: tuple[int, ...]
    activation: str = "relu"

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise InputError(
                f"unknown activation {self.activation!r}: expected one of {', '.join(ACTIVATIONS)}"
            )
        if self.n_classes < 2:
            raise InputError(f"n_classes must be >= 2, got {self.n_classes}")
        if any(h <= 0 for h in self.hidden):
            raise InputError(f"hidden sizes must be positive integers, got {self.hidden}")

    @property
    def n_outputs(self) -> int:
        """Binary tasks have one logit (sigmoid); multiclass ones one per class (softmax)."""
        return 1 if self.n_classes == 2 else self.n_classes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**{**d, "hidden": tuple(d["hidden"])})


def build_mlp(cfg: ModelConfig) -> nn.Sequential:
    """Linear layers of cfg.hidden sizes with cfg.activation between them, then the logit layer."""
    layers: list[nn.Module] = []
    width = cfg.n_features
    for h in cfg.hidden:
        layers.append(nn.Linear(width, h))
        if cfg.activation == "relu":
            layers.append(nn.ReLU())
        elif cfg.activation == "tanh":
            layers.append(nn.Tanh())
        width = h
    layers.append(nn.Linear(width, cfg.n_outputs))
    return nn.Sequential(*layers)


class SmoothedBCEWithLogits(nn.BCEWithLogitsLoss):
    """BCEWithLogitsLoss on targets pulled towards 1/2 by `smoothing`, as CrossEntropyLoss(label_smoothing)."""

    def __init__(self, smoothing: float = 0.0) -> None:
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits (N, 1), target (N,) class indices 0/1."""
        return super().forward(logits[:, 0], target.float() * (1 - self.smoothing) + self.smoothing / 2)


def loss_fn(cfg: ModelConfig, smoothing: float = 0.0) -> nn.Module:
    """Binary: BCEWithLogits on one logit; multiclass: CrossEntropy on C logits. Both take (N, 1|C) logits and
    (N,) class indices.

    Label smoothing keeps the logits in a range where float32 engines agree to the parity tolerance (an
    unsmoothed fit of separable data drives them past 100, where one float32 ulp is already 8e-6).
    """
    if cfg.n_outputs == 1:
        return SmoothedBCEWithLogits(smoothing)
    return nn.CrossEntropyLoss(label_smoothing=smoothing)


def predict_labels(logits: torch.Tensor) -> torch.Tensor:
    """(N, 1) or (N, C) logits -> (N,) class indices."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=1)
