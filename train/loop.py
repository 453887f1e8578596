"""Training: seeded, deterministic on CPU, keeps a per-epoch history, runs on CPU or CUDA."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ContextManager, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from edgeclf.runtime.errors import InputError
from edgeclf.train.calibration import calibration_summary
from edgeclf.train.model import ModelConfig, Standardize, WithProbabilities, build_mlp, loss_fn, predict_labels
from edgeclf.train.settings import DEFAULT_SEED, DEVICES, OPTIMIZERS, PORTABLE_THREADS, SGD_MOMENTUM
from edgeclf.train.tasks import Dataset, TaskSpec


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    lr: float
    optimizer: str = "adam"
    seed: int = DEFAULT_SEED
    batch_size: int = 0  # 0 = full batch
    device: str = "auto"
    weight_decay: float = 0.0  # decoupled (AdamW) only: SGD never takes it

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise InputError(f"epochs must be a positive integer, got {self.epochs}")
        if not self.lr > 0:
            raise InputError(f"learning rate must be > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
        if self.batch_size < 0:
            raise InputError(f"batch size must be >= 0 (0 = full batch), got {self.batch_size}")
        if self.weight_decay < 0 or (self.weight_decay and self.optimizer != "adam"):
            raise InputError(f"weight decay {self.weight_decay} is only for adam (decoupled, AdamW), expected >= 0")
        if self.device not in DEVICES:
            raise InputError(f"unknown device {self.device!r}: expected one of {', '.join(DEVICES)}")

    @classmethod
    def defaults(cls, spec: TaskSpec, **overrides: Any) -> TrainConfig:
        """The task's recipe for the chosen optimizer (its own lr, epochs, decay), then explicit overrides."""
        given = {k: v for k, v in overrides.items() if v is not None}
        optimizer = given.get("optimizer", spec.optimizer)
        recipe = spec.recipes.get(optimizer)
        base: dict[str, Any] = {"optimizer": optimizer, "batch_size": spec.batch_size}
        if recipe is not None:
            base.update(epochs=recipe.epochs, lr=recipe.lr, weight_decay=recipe.weight_decay)
        missing = [k for k in ("epochs", "lr") if k not in base and k not in given]
        if missing:
            raise InputError(f"task {spec.name!r} has no {optimizer} recipe: give --{missing[0]}")
        return cls(**{**base, **given})


@dataclass
class TrainResult:
    model: nn.Sequential  # on CPU, eval mode
    model_config: ModelConfig
    device: str  # the device actually used
    metrics: dict[str, Any]
    seconds: float = field(default=0.0)

    @property
    def target_met(self) -> bool:
        return bool(self.metrics.get("target_met", True))


def resolve_device(requested: str, cuda_available: bool | None = None) -> str:
    """'auto' -> cuda when present else cpu; 'cuda' without a GPU is an error, never a silent fallback."""
    if requested not in DEVICES:
        raise InputError(f"unknown device {requested!r}: expected one of {', '.join(DEVICES)}")
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    if requested == "cuda" and not cuda_available:
        raise InputError("device 'cuda' requested but torch sees no CUDA GPU: use --device cpu or auto")
    return requested


@torch.no_grad()
def evaluate(model: nn.Module, lossf: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean loss and accuracy of model on (x, y)."""
    logits = model(x)  # (N, 1) or (N, C)
    loss = lossf(logits, y)
    acc = (predict_labels(logits) == y).float().mean()
    return float(loss), float(acc)


def _batches(n: int, batch_size: int, gen: torch.Generator, device: str) -> list[torch.Tensor | slice]:
    if batch_size == 0 or batch_size >= n:
        return [slice(None)]  # full batch: no gather needed
    order = torch.randperm(n, generator=gen).to(device)  # seeded data order
    return list(torch.split(order, batch_size))


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=SGD_MOMENTUM)


def init_model(model_cfg: ModelConfig, cfg: TrainConfig, x_train: np.ndarray, device: str,
               stats: tuple[np.ndarray, np.ndarray] | None = None) -> nn.Sequential:
    """Seeded initialisation (without touching the caller's RNG); the Standardize layer fitted on x_train, or
    given the (mean, std) `stats` of training rows that are not all in memory."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_mlp(model_cfg)
    if model_cfg.standardize:
        first = model[0]
        assert isinstance(first, Standardize)
        if stats is None:
            first.fit(torch.from_numpy(x_train))
        else:
            first.set(torch.from_numpy(stats[0]), torch.from_numpy(stats[1]))
    return model.to(device)


def arithmetic() -> dict[str, Any]:
    """Which CPU code path torch computes with: 'DEFAULT' everywhere when edgeclf pinned it (portable bytes)."""
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": PORTABLE_THREADS}


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(PORTABLE_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(spec: TaskSpec, cfg: TrainConfig, model_cfg: ModelConfig, data: Dataset | None = None,
          progress: bool = False) -> TrainResult:
    """Train spec's classifier with cfg; returns the CPU model and its metrics."""
    with _one_thread():
        return _train(spec, cfg, model_cfg, data, progress)


def _train(spec: TaskSpec, cfg: TrainConfig, model_cfg: ModelConfig, data: Dataset | None,
           progress: bool) -> TrainResult:
    device = resolve_device(cfg.device)
    data = data or spec.dataset()
    model = init_model(model_cfg, cfg, data.x_train, device)
    lossf = loss_fn(model_cfg)
    opt = _optimizer(model, cfg)
    xtr, ytr = torch.from_numpy(data.x_train).to(device), torch.from_numpy(data.y_train).to(device)
    xte, yte = torch.from_numpy(data.x_test).to(device), torch.from_numpy(data.y_test).to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    hist: dict[str, list[float]] = {k: [] for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")}
    start = time.perf_counter()
    with _progress(cfg.epochs, progress, spec.name) as epochs:
        for _ in epochs:
            model.train()
            for idx in _batches(len(xtr), cfg.batch_size, gen, device):
                loss = lossf(model(xtr[idx]), ytr[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            model.eval()
            _record(hist, model, lossf, (xtr, ytr), (xte, yte))
    seconds = time.perf_counter() - start
    model = model.cpu().eval()
    metrics = _metrics(hist, cfg, device, spec, calibration(model, model_cfg, spec, data))
    return TrainResult(model, model_cfg, device, metrics, seconds)


def _record(hist: dict[str, list[float]], model: nn.Module, lossf: nn.Module,
            train_xy: tuple[torch.Tensor, torch.Tensor], test_xy: tuple[torch.Tensor, torch.Tensor]) -> None:
    for split, (x, y) in (("train", train_xy), ("test", test_xy)):
        loss_v, acc_v = evaluate(model, lossf, x, y)
        hist[f"{split}_loss"].append(loss_v)
        hist[f"{split}_accuracy"].append(acc_v)


Batches = Callable[[int, int], Iterable[tuple[np.ndarray, np.ndarray]]]  # (batch_size, epoch) -> (x, y) batches


def train_streamed(spec: TaskSpec, cfg: TrainConfig, model_cfg: ModelConfig, data: Dataset,
                   stats: tuple[np.ndarray, np.ndarray], batches: Batches, rows: int,
                   progress: bool = False) -> TrainResult:
    """Train on a table read from its file every epoch: batches(batch_size, epoch) yields the epoch's `rows`
    training rows as mini-batches (batch_size 0: any chunks, whose gradients add up to one full-batch step).
    `data` holds the rows kept in memory, a sample of the training rows and the held-out test rows: the
    per-epoch metrics and the calibration are measured on them. `stats`: (mean, std) of all training rows."""
    with _one_thread():
        device = resolve_device(cfg.device)
        model = init_model(model_cfg, cfg, data.x_train, device, stats)
        lossf, opt = loss_fn(model_cfg), _optimizer(model, cfg)
        kept = [(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
                for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test))]
        hist: dict[str, list[float]] = {k: [] for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")}
        start = time.perf_counter()
        with _row_progress(cfg.epochs, rows, progress, spec.name) as bar:
            for epoch in range(cfg.epochs):
                model.train()
                opt.zero_grad(set_to_none=True)
                for x_np, y_np in batches(cfg.batch_size, epoch):
                    x, y = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device)
                    if cfg.batch_size:
                        lossf(model(x), y).backward()
                        opt.step()
                        opt.zero_grad(set_to_none=True)
                    else:  # full batch: the mean loss over all rows, a chunk at a time
                        (lossf(model(x), y) * (len(y) / rows)).backward()
                    if bar is not None:
                        bar.update(len(y), f"{epoch + 1}/{cfg.epochs}")
                if not cfg.batch_size:
                    opt.step()
                model.eval()
                _record(hist, model, lossf, *kept)
        seconds = time.perf_counter() - start
        model = model.cpu().eval()
        metrics = _metrics(hist, cfg, device, spec, calibration(model, model_cfg, spec, data))
    return TrainResult(model, model_cfg, device, metrics, seconds)


@torch.no_grad()
def calibration(model: nn.Module, model_cfg: ModelConfig, spec: TaskSpec, data: Dataset) -> dict[str, Any]:
    """Log loss, Brier score and ECE on the test split and, where the task can draw one, a fresh sample."""
    head = WithProbabilities(model, model_cfg.n_classes).eval()
    samples = {"test": (data.x_test, data.y_test)}
    fresh = spec.fresh() if spec.fresh_targets else None
    if fresh is not None:
        samples["fresh"] = fresh
    return {k: calibration_summary(head(torch.from_numpy(x))[1].numpy(), y) for k, (x, y) in samples.items()}


def _metrics(hist: dict[str, list[float]], cfg: TrainConfig, device: str, spec: TaskSpec,
             calib: dict[str, Any]) -> dict[str, Any]:
    # rounded so that metrics.json stays small and its bytes stable
    r = {k: [round(v, 6) for v in vs] for k, vs in hist.items()}
    test_acc = r["test_accuracy"][-1]
    return {
        "test_accuracy": test_acc, "test_loss": r["test_loss"][-1],
        "train_accuracy": r["train_accuracy"][-1], "train_loss": r["train_loss"][-1],
        "target_accuracy": spec.target_accuracy, "target_met": test_acc >= spec.target_accuracy,
        "epochs": cfg.epochs, "seed": cfg.seed, "device": device, "arithmetic": arithmetic(),
        "train_config": asdict(cfg), "calibration": calib, "history": r,
    }


def _row_progress(epochs: int, rows: int, enabled: bool, label: str) -> ContextManager[Any]:
    """A bar over every row of every epoch, on a terminal only (else None)."""
    if not (enabled and sys.stderr.isatty()):
        return contextlib.nullcontext(None)
    import click

    return click.progressbar(length=epochs * rows, label=f"training {label} ({rows:,} rows x {epochs} epochs)",
                             file=sys.stderr, show_pos=True, item_show_func=lambda e: f"epoch {e}" if e else None)


def _progress(epochs: int, enabled: bool, label: str) -> ContextManager[Iterable[int]]:
    """A progress bar on a terminal only; plain iteration otherwise."""
    if not (enabled and sys.stderr.isatty()):
        return contextlib.nullcontext(range(epochs))
    import click

    return click.progressbar(range(epochs), label=f"training {label}", file=sys.stderr)
