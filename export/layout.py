"""How the exported ONNX graph is arranged: the same function as the trained module, laid out for onnxruntime.

The parity check compares every exported file with the plain trained module (eager PyTorch), so a graph that
computes the same function in another arrangement is held to the same tolerance policy as a straight trace.
For the MLP family (an optional Standardize, Linear layers with ReLU/Tanh between them, the logits head of
WithProbabilities) edgeclf exports one of two layouts:

- row-major: activations (B, width), as the module computes them (a straight trace).
- feature-major: the input is transposed once and every activation is (width, B); each Linear is
  `addmm(b[:, None], W, h)`. onnxruntime's Gemm then vectorises along the batch instead of along a 2-64 wide
  layer, which is faster when the layers are narrow and slower when they are wide (docs/benchmarks.md has the
  figures per task). The outputs are transposed back: the file's signature is (B, F) -> (B, C) either way.

Both layouts also take two rewrites that change no value beyond float32 rounding:
- the standardisation's division is folded into the first layer's weights, W / std; the subtraction of the
  mean stays a Sub node (no cancellation of two large sums, which folding the mean would risk);
- the binary head `sigmoid(z * [-1, 1])` becomes `sigmoid(concat(0 - z, z))`: the same values (negation is
  exact), a Sub and a Concat instead of a broadcast Mul, the slower of the two in onnxruntime, and no Neg node
  (which mobile execution providers do not all take).
A multiclass feature-major graph transposes the logits back and applies Softmax to them as row-major does: a
softmax along the class axis of (C, B) written as ReduceMax / Exp / ReduceSum is faster still (docs/benchmarks.md),
but NNAPI does not take those nodes, and every file must stay usable by the mobile execution providers.

Which layout a file gets is a rule of the architecture and the batch size (`choose_layout`), never a timing
taken at export: the same model exports to the same bytes on every machine. Any other architecture (a
brought-in model) is exported exactly as traced.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from edgeclf.export import LAYOUT_CHOICES
from edgeclf.runtime.errors import InputError
from edgeclf.train.model import Standardize, WithProbabilities

AS_TRACED = "as-traced"
# docs/benchmarks.md, "Graph layout", has the figures per task: feature-major wins where every layer is at most
# 32 wide and loses at 64
FEATURE_MAJOR_MAX_WIDTH = 32


@dataclass(frozen=True)
class MLP:
    """An MLP's parameters as plain tensors: [(W (out, in), b (out,), activation after it or None)]."""

    mean: torch.Tensor | None
    std: torch.Tensor | None
    layers: tuple[tuple[torch.Tensor, torch.Tensor, str | None], ...]
    binary: bool
    multilabel: bool = False
    fill: torch.Tensor | None = None  # (F,) NaN inputs take these values first (NaN: not filled)

    @property
    def max_width(self) -> int:
        return max(max(w.shape) for w, _, _ in self.layers)


def mlp_of(model: nn.Module) -> MLP | None:
    """The MLP inside a WithProbabilities, or None when the network is anything else."""
    if not isinstance(model, WithProbabilities) or not isinstance(model.net, nn.Sequential):
        return None
    mods = list(model.net)
    mean = std = fill = None
    if mods and isinstance(mods[0], Standardize):
        mean, std = mods[0].mean.detach().clone(), mods[0].std.detach().clone()
        fill = None if mods[0].fill is None else mods[0].fill.detach().clone()
        mods = mods[1:]
    layers: list[tuple[torch.Tensor, torch.Tensor, str | None]] = []
    for m in mods:
        if isinstance(m, nn.Linear) and m.bias is not None:
            layers.append((m.weight.detach().clone(), m.bias.detach().clone(), None))
        elif isinstance(m, (nn.ReLU, nn.Tanh)) and layers and layers[-1][2] is None:
            w, b, _ = layers[-1]
            layers[-1] = (w, b, "relu" if isinstance(m, nn.ReLU) else "tanh")
        else:
            return None
    if not layers or layers[-1][2] is not None:
        return None
    return MLP(mean, std, tuple(layers), model.binary, model.multilabel, fill)


def _check_wanted(wanted: str) -> None:
    if wanted not in LAYOUT_CHOICES:
        raise InputError(f"unknown layout {wanted!r}: expected one of {', '.join(LAYOUT_CHOICES)}")


def choose_layout(mlp: MLP, batch: int, wanted: str = "auto") -> str:
    """Feature-major for narrow MLPs, except at batch 1: there a feature-major Gemm is a matrix-vector product,
    which onnxruntime computes with another kernel that rounds differently, while row-major at batch 1 and both
    layouts at batch >= 2 give the same bits. So a row's outputs do not depend on the batch size or
    the position it was run at, bit for bit: the Classifier mixes batch sizes to cover N rows, and the
    reliability suite holds it to that."""
    _check_wanted(wanted)
    if wanted != "auto":
        return wanted
    return "feature-major" if mlp.max_width <= FEATURE_MAJOR_MAX_WIDTH and batch >= 2 else "row-major"


class Arranged(nn.Module):
    """An MLP's function in the given layout: x (B, F) -> logits (B, 1|C), probabilities (B, C)."""

    zero: torch.Tensor
    mean: torch.Tensor
    fill: torch.Tensor | None

    def __init__(self, mlp: MLP, layout: str) -> None:
        super().__init__()
        if layout not in ("row-major", "feature-major"):
            raise InputError(f"unknown layout {layout!r}: expected row-major or feature-major")
        self.feature_major = layout == "feature-major"
        self.binary = mlp.binary
        self.multilabel = mlp.multilabel
        self.acts = [a for _, _, a in mlp.layers]
        fm = self.feature_major
        self.standardise = mlp.mean is not None and mlp.std is not None
        last = len(mlp.layers) - 1
        for i, (w, b, _) in enumerate(mlp.layers):
            if i == 0 and mlp.std is not None:
                w = w / mlp.std[None, :]  # (x - mean) / std then W  ==  W / std applied to (x - mean)
            if i == last and fm and self.binary:  # rows [-w; w]: the layer computes [-z; z], exactly negated
                w, b = torch.cat([-w, w]), torch.cat([-b, b])
            self.register_buffer(f"w{i}", w.contiguous())
            self.register_buffer(f"b{i}", (b[:, None] if fm else b).contiguous())
        if mlp.mean is not None:
            self.register_buffer("mean", (mlp.mean[:, None] if fm else mlp.mean).contiguous())
        if mlp.fill is not None:
            self.register_buffer("fill", (mlp.fill[:, None] if fm else mlp.fill).contiguous())
        else:
            self.fill = None
        self.register_buffer("zero", torch.zeros(1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fm = self.feature_major
        h = x.t() if fm else x  # (F, B) or (B, F)
        if self.fill is not None:
            h = torch.where(torch.isnan(h), self.fill, h)
        if self.standardise:
            h = h - self.mean
        for i, act in enumerate(self.acts):
            w, b = getattr(self, f"w{i}"), getattr(self, f"b{i}")
            h = torch.addmm(b, w, h) if fm else functional.linear(h, w, b)
            if act == "relu":
                h = torch.relu(h)
            elif act == "tanh":
                h = torch.tanh(h)
        if fm and self.binary:  # h = [-z; z] (2, B): the logits layer was doubled with its negation
            return h[1:].t(), torch.sigmoid(h).t()
        if self.binary:  # (B, 1) logit -> (B, 2) probabilities
            return h, torch.sigmoid(torch.cat([self.zero - h, h], dim=1))
        logits = h.t() if fm else h  # (B, C)
        if self.multilabel:  # (B, L): one independent sigmoid per label
            return logits, torch.sigmoid(logits)
        return logits, torch.softmax(logits, dim=1)


def arrange(model: nn.Module, batch: int, wanted: str = "auto") -> tuple[nn.Module, str]:
    """(module to export at this batch size, its layout name). Not an MLP: the model itself, 'as-traced'."""
    mlp = mlp_of(model)
    if mlp is None:
        _check_wanted(wanted)
        if wanted != "auto":
            raise InputError(f"layout {wanted!r} needs an MLP (Linear layers with ReLU/Tanh between them); this "
                             f"model is exported as traced: use --layout auto")
        return model, AS_TRACED
    layout = choose_layout(mlp, batch, wanted)
    return Arranged(mlp, layout).eval(), layout
