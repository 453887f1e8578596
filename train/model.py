"""The MLP classifier and its frozen config; the model is only ever rebuilt from the config."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from edgeclf.runtime.contract import MULTILABEL, n_logits
from edgeclf.runtime.errors import InputError
from edgeclf.train.settings import ACTIVATIONS


@dataclass(frozen=True)
class ModelConfig:
    task: str
    n_features: int
    n_classes: int
    hidden: tuple[int, ...]
    activation: str = "relu"
    standardize: bool = False  # a Standardize layer first: (x - mean) / std, statistics kept in the state_dict
    multilabel: bool = False  # n_classes labels, each its own sigmoid output (binary cross-entropy)
    # per feature, the value an empty cell (NaN) takes before standardisation (--impute median); None: NaN there
    # is refused. Absent from older checkpoints, and not written when None, so they load and save as before.
    fill: tuple[float | None, ...] | None = None
    # per feature, its vocabulary (the input holds the value's index in it; a OneHot layer after Standardize
    # expands it) or () for a number; None: no category. Not written when None, as fill.
    categories: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise InputError(f"unknown activation {self.activation!r}: expected one of {', '.join(ACTIVATIONS)}")
        if self.n_classes < 2:
            raise InputError(f"n_classes must be >= 2, got {self.n_classes}")
        if self.n_features < 1:
            raise InputError(f"n_features must be >= 1, got {self.n_features}")
        if any(h <= 0 for h in self.hidden):
            raise InputError(f"hidden sizes must be positive integers, got {self.hidden}")
        if self.fill is not None and (len(self.fill) != self.n_features or not self.standardize):
            raise InputError(f"fill has {len(self.fill)} values for {self.n_features} features: expected one per "
                             "feature (None where nothing is filled), in a model with standardize=True")
        if self.categories is not None and (len(self.categories) != self.n_features or not self.standardize):
            raise InputError(f"categories has {len(self.categories)} counts for {self.n_features} features: expected "
                             "one per feature (0 for a number), in a model with standardize=True")

    @property
    def n_outputs(self) -> int:
        return n_logits(self.n_classes, MULTILABEL if self.multilabel else "")

    @property
    def n_inputs(self) -> int:
        """The first Linear layer's width: a number is one input, a category one per value."""
        return sum(len(v) or 1 for v in self.categories) if self.categories else self.n_features

    @property
    def layer_sizes(self) -> list[int]:
        return [self.n_inputs, *self.hidden, self.n_outputs]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        if not self.multilabel:  # single-label configs are saved exactly as before this field existed
            del d["multilabel"]
        for key in ("fill", "categories"):
            if d[key] is None:
                del d[key]
        if self.fill is not None:
            d["fill"] = list(self.fill)
        if self.categories is not None:
            d["categories"] = [list(v) for v in self.categories]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        fill, cats = d.get("fill"), d.get("categories")
        return cls(**{**d, "hidden": tuple(d["hidden"]), "fill": None if fill is None else tuple(fill),
                      "categories": None if cats is None else tuple(tuple(v) for v in cats)})


class Standardize(nn.Module):
    """(x - mean) / std with the train split's statistics as buffers: exported as plain Sub and Div nodes, so every
    runtime (browser, C) takes raw feature values. With `fill`: where(isnan(x), fill, x) first, so an empty cell
    of an imputed feature takes the training median inside the graph (NaN fill: that feature's NaN stays NaN;
    the runtimes refuse it before it gets here)."""

    mean: torch.Tensor
    std: torch.Tensor
    fill: torch.Tensor | None

    def __init__(self, n_features: int, fill: tuple[float | None, ...] | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        if fill is not None:  # a buffer only then: models without it keep their state_dict (and its hash)
            self.register_buffer("fill", fill_tensor(fill))
        else:
            self.fill = None

    def fit(self, x: torch.Tensor) -> None:
        """x (N, F): a constant feature (std 0) keeps std 1, so it is only centred."""
        std = x.std(dim=0, unbiased=False)
        self.mean.copy_(x.mean(dim=0))
        self.std.copy_(torch.where(std > 0, std, torch.ones_like(std)))

    def set(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Statistics measured elsewhere (a table streamed from its file); std already without zeros."""
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fill is not None:
            x = torch.where(torch.isnan(x), self.fill, x)  # (N, F)
        return (x - self.mean) / self.std  # (N, F)


def fill_tensor(fill: tuple[float | None, ...]) -> torch.Tensor:
    """(F,) float32: the fill values, NaN where a feature has none (where(isnan(x), NaN, x) is x)."""
    return torch.tensor([float("nan") if v is None else float(v) for v in fill], dtype=torch.float32)


class OneHot(nn.Module):
    """x (N, F) -> (N, n_inputs): a category column (its value's index) becomes (x[:, j] == 0..K-1) as floats, a
    number column stays. An index outside 0..K-1 (or not whole) gives all zeros; the runtimes refuse it first."""

    def __init__(self, categories: tuple[int, ...]) -> None:
        super().__init__()
        self.categories = categories
        for j, k in enumerate(categories):
            if k:
                self.register_buffer(f"codes{j}", torch.arange(k, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for j, k in enumerate(self.categories):
            col = x[:, j:j + 1]  # (N, 1)
            parts.append((col == getattr(self, f"codes{j}")).to(x.dtype) if k else col)  # (N, K) or (N, 1)
        return torch.cat(parts, dim=1)  # (N, n_inputs)


def build_mlp(cfg: ModelConfig) -> nn.Sequential:
    """[Standardize [OneHot]], then Linear layers of cfg.hidden sizes with cfg.activation between them, then the
    logits."""
    layers: list[nn.Module] = [Standardize(cfg.n_features, cfg.fill)] if cfg.standardize else []
    if cfg.categories:
        layers.append(OneHot(tuple(len(v) for v in cfg.categories)))
    sizes = cfg.layer_sizes
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 and cfg.activation != "none":
            layers.append(nn.ReLU() if cfg.activation == "relu" else nn.Tanh())
    return nn.Sequential(*layers)


def loss_fn(cfg: ModelConfig) -> nn.Module:
    """Binary: BCEWithLogits on one logit; multiclass: CrossEntropy on C logits. Both take (N, 1|C) logits and
    (N,) class indices."""
    if cfg.multilabel:
        return nn.BCEWithLogitsLoss()  # (N, L) logits against (N, L) 0/1 targets: one sigmoid per label
    if cfg.n_outputs == 1:
        return _BinaryLoss()
    return nn.CrossEntropyLoss()


class _BinaryLoss(nn.BCEWithLogitsLoss):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits (N, 1), target (N,) class indices 0/1."""
        return super().forward(logits[:, 0], target.to(logits.dtype))


def predict_labels(logits: torch.Tensor) -> torch.Tensor:
    """(N, 1) or (N, C) logits -> (N,) class indices."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=1)


class WithProbabilities(nn.Module):
    """A logits network plus the output activation every exported file computes: x (N, F) -> logits (N, 1|C),
    probabilities (N, C). Binary: [1-p, p] as sigmoid(z * [-1, 1]), exact (sigmoid(-z) is the accurate form of
    1 - sigmoid(z)) and without a Neg node, which mobile execution providers (NNAPI, CoreML) do not all take."""

    sign: torch.Tensor

    def __init__(self, net: nn.Module, n_classes: int, multilabel: bool = False) -> None:
        super().__init__()
        self.net = net
        self.multilabel = multilabel  # one independent sigmoid per output: (N, L) -> (N, L)
        self.binary = n_classes == 2 and not multilabel
        self.register_buffer("sign", torch.tensor([[-1.0, 1.0]]), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)  # (N, 1) or (N, C) or (N, L)
        if self.multilabel:
            return logits, torch.sigmoid(logits)  # (N, L)
        if self.binary:
            return logits, torch.sigmoid(logits * self.sign)  # (N, 2)
        return logits, torch.softmax(logits, dim=1)  # (N, C)
