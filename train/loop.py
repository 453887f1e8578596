"""Training: seeded, deterministic on CPU, keeps a per-epoch history, runs on CPU or CUDA."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from edgeclf.runtime.errors import InputError
from edgeclf.train.calibration import calibration_summary
from edgeclf.train.model import ModelConfig, Standardize, WithProbabilities, build_mlp, loss_fn, predict_labels
from edgeclf.train.settings import DEFAULT_SEED, DEVICES, OPTIMIZERS, PORTABLE_THREADS, SGD_MOMENTUM, VALIDATION
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
    patience: int = 0  # early stopping on validation log loss, best weights restored (0 = off)

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
        if self.patience < 0:
            raise InputError(f"patience must be >= 0 (0 = no early stopping), got {self.patience}")
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
            base.update(epochs=recipe.epochs, lr=recipe.lr, weight_decay=recipe.weight_decay, patience=recipe.patience)
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
    logits = model(x)  # (N, 1) or (N, C); multi-label (N, L)
    loss = lossf(logits, y)
    if y.ndim == 2:  # multi-label: subset accuracy at 0.5 (every label of the row right)
        acc = ((logits > 0) == (y > 0.5)).all(dim=1).float().mean()
    else:
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
        for j, vocab in enumerate(model_cfg.categories or ()):
            if vocab:  # a category's index passes unchanged, so the OneHot layer compares whole numbers
                first.mean[j], first.std[j] = 0.0, 1.0
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


Batches = Callable[[int, int], Iterable[tuple[np.ndarray, np.ndarray]]]  # (batch_size, epoch) -> (x, y) batches
Epoch = Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]  # epoch -> (x, y) batches on the device


class MemoryBatches:
    """Training rows held in memory, in seeded mini-batches (batch_size 0 or >= N: the whole set at once)."""

    streamed = False
    standardize: tuple[np.ndarray, np.ndarray] | None = None  # the Standardize layer is fitted on the rows

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y, self.rows = x, y, len(y)

    def epochs(self, cfg: TrainConfig, device: str) -> Epoch:
        x, y = torch.from_numpy(self.x).to(device), torch.from_numpy(self.y).to(device)
        gen = torch.Generator().manual_seed(cfg.seed)

        def epoch(_: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for idx in _batches(len(x), cfg.batch_size, gen, device):
                yield x[idx], y[idx]

        return epoch


class FileBatches:
    """Training rows read from their file again every epoch: batches(batch_size, epoch) yields the epoch's `rows`
    rows as mini-batches (batch_size 0: any chunks, whose gradients add up to one full-batch step).
    standardize: (mean, std) of every training row, measured while the file was first read."""

    streamed = True

    def __init__(self, batches: Batches, rows: int, standardize: tuple[np.ndarray, np.ndarray]) -> None:
        self.batches, self.rows, self.standardize = batches, rows, standardize

    def epochs(self, cfg: TrainConfig, device: str) -> Epoch:
        def epoch(e: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for x, y in self.batches(cfg.batch_size, e):
                yield torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

        return epoch


BatchSource = MemoryBatches | FileBatches


def train(spec: TaskSpec, cfg: TrainConfig, model_cfg: ModelConfig, data: Dataset | None = None,
          progress: bool = False, source: BatchSource | None = None) -> TrainResult:
    """Train spec's classifier with cfg on source's batches (default: data's training rows in memory); returns the
    CPU model and its metrics. data's rows in memory (for a streamed table, a sample of the training rows and the
    held-out rows) give the per-epoch metrics and the calibration. cfg.patience: a stratified VALIDATION share of
    data's training rows is held out of training, and the weights of its lowest log loss are restored."""
    data = data or spec.dataset()
    if cfg.patience and source is not None and source.streamed:
        raise InputError("early stopping (patience) needs the training rows in memory: give patience 0 for a "
                         "streamed table")
    fit, val = validation_split(data, cfg)
    with _one_thread():
        return _train(spec, cfg, model_cfg, data, fit, val, source or MemoryBatches(fit.x_train, fit.y_train),
                      progress)


XY = tuple[np.ndarray, np.ndarray]


def validation_split(data: Dataset, cfg: TrainConfig) -> tuple[Dataset, XY | None]:
    """(data less the validation rows, the validation rows (x, y)): a stratified VALIDATION share of the training
    rows, seeded by cfg.seed (data.validation instead, when the caller held rows out); none without patience, or
    where a class has too few rows to be on both sides."""
    if not cfg.patience:
        return data, None
    if data.validation is not None:
        return data, data.validation
    counts = np.bincount(data.y_train)
    n_val = int(np.ceil(VALIDATION * len(data.y_train)))
    if counts[counts > 0].min() < 2 or n_val < len(counts) or len(data.y_train) - n_val < len(counts):
        return data, None
    from sklearn.model_selection import train_test_split

    x_fit, x_val, y_fit, y_val = train_test_split(data.x_train, data.y_train, test_size=VALIDATION,
                                                  random_state=cfg.seed, stratify=data.y_train)
    return replace(data, x_train=x_fit, y_train=y_fit), (x_val, y_val)


class _Best:
    """The lowest validation loss so far, its epoch and a copy of the weights then."""

    def __init__(self) -> None:
        self.loss, self.epoch, self.state = float("inf"), -1, {}  # type: tuple[float, int, dict[str, torch.Tensor]]

    def waited(self, loss: float, epoch: int, model: nn.Module) -> int:
        """Record this epoch's loss; returns how many epochs have passed without a new lowest."""
        if loss < self.loss:
            self.loss, self.epoch = loss, epoch
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return epoch - self.epoch


def _train(spec: TaskSpec, cfg: TrainConfig, model_cfg: ModelConfig, data: Dataset, fit: Dataset, val: XY | None,
           source: BatchSource, progress: bool) -> TrainResult:
    device = resolve_device(cfg.device)
    model = init_model(model_cfg, cfg, fit.x_train, device, source.standardize)
    lossf, opt = loss_fn(model_cfg), _optimizer(model, cfg)
    splits = {"train": (fit.x_train, fit.y_train), "test": (data.x_test, data.y_test), **({"val": val} if val else {})}
    kept = {k: (torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)) for k, (x, y) in splits.items()}
    epoch_batches = source.epochs(cfg, device)
    hist: dict[str, list[float]] = {f"{k}_{m}": [] for k in kept for m in ("loss", "accuracy")}
    best = _Best()
    start = time.perf_counter()
    with _progress(cfg.epochs, source, progress, spec.name) as bar:
        for epoch in range(cfg.epochs):
            model.train()
            opt.zero_grad(set_to_none=True)
            for x, y in epoch_batches(epoch):
                if cfg.batch_size:
                    lossf(model(x), y).backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                else:  # full batch: the mean loss over all rows, a chunk at a time
                    (lossf(model(x), y) * (len(y) / source.rows)).backward()
                bar(epoch, len(y))
            if not cfg.batch_size:
                opt.step()
            model.eval()
            _record(hist, model, lossf, kept)
            if val is not None and best.waited(hist["val_loss"][-1], epoch, model) >= cfg.patience:
                break
    if val is not None:
        model.load_state_dict(best.state)
    seconds = time.perf_counter() - start
    model = model.cpu().eval()
    metrics = _metrics(hist, cfg, device, spec, calibration(model, model_cfg, spec, data), best.epoch)
    if val is not None:
        metrics["early_stopping"] = _stopping(cfg, best, len(val[1]), len(hist["val_loss"]))
    return TrainResult(model, model_cfg, device, metrics, seconds)


def _stopping(cfg: TrainConfig, best: _Best, rows: int, ran: int) -> dict[str, Any]:
    return {"validation": f"stratified {VALIDATION:.0%} of the training rows (seed {cfg.seed})", "validation_rows": rows,
            "patience": cfg.patience, "max_epochs": cfg.epochs, "epochs_run": ran, "best_epoch": best.epoch + 1,
            "best_val_loss": round(best.loss, 6)}


def _record(hist: dict[str, list[float]], model: nn.Module, lossf: nn.Module,
            kept: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    for split, (x, y) in kept.items():
        loss_v, acc_v = evaluate(model, lossf, x, y)
        hist[f"{split}_loss"].append(loss_v)
        hist[f"{split}_accuracy"].append(acc_v)


@torch.no_grad()
def calibration(model: nn.Module, model_cfg: ModelConfig, spec: TaskSpec, data: Dataset) -> dict[str, Any]:
    """Log loss, Brier score and ECE on the test split and, where the task can draw one, a fresh sample.
    A multi-label model's calibration is per label (train/multilabel.py metrics)."""
    if model_cfg.multilabel:
        return {}
    head = WithProbabilities(model, model_cfg.n_classes).eval()
    samples = {"test": (data.x_test, data.y_test)}
    fresh = spec.fresh() if spec.fresh_targets else None
    if fresh is not None:
        samples["fresh"] = fresh
    return {k: calibration_summary(head(torch.from_numpy(x))[1].numpy(), y) for k, (x, y) in samples.items()}


def config_record(cfg: TrainConfig) -> dict[str, Any]:
    """The training config as metrics.json records it."""
    config = asdict(cfg)
    if not cfg.patience:  # the field came later: runs without it keep their metrics.json bytes
        del config["patience"]
    return config


def _metrics(hist: dict[str, list[float]], cfg: TrainConfig, device: str, spec: TaskSpec,
             calib: dict[str, Any], best: int) -> dict[str, Any]:
    """The epoch whose weights the model has (best: the restored one; -1: the last) and the whole history."""
    # rounded so that metrics.json stays small and its bytes stable
    r = {k: [round(v, 6) for v in vs] for k, vs in hist.items()}
    test_acc = r["test_accuracy"][best]
    config = config_record(cfg)
    return {
        "test_accuracy": test_acc, "test_loss": r["test_loss"][best],
        "train_accuracy": r["train_accuracy"][best], "train_loss": r["train_loss"][best],
        "target_accuracy": spec.target_accuracy, "target_met": test_acc >= spec.target_accuracy,
        "epochs": cfg.epochs if best < 0 else best + 1, "seed": cfg.seed, "device": device,
        "arithmetic": arithmetic(), "train_config": config, "calibration": calib, "history": r,
    }


@contextlib.contextmanager
def _progress(epochs: int, source: BatchSource, enabled: bool, label: str) -> Iterator[Callable[[int, int], None]]:
    """On a terminal only: a bar over every row of every epoch for a streamed table, over epochs otherwise. Yields
    update(epoch, rows done)."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda epoch, n: None
        return
    import click

    if source.streamed:
        rows_bar: Any
        with click.progressbar(length=epochs * source.rows, file=sys.stderr, show_pos=True,
                               label=f"training {label} ({source.rows:,} rows x {epochs} epochs)",
                               item_show_func=lambda e: f"epoch {e}" if e else None) as rows_bar:
            yield lambda epoch, n: rows_bar.update(n, f"{epoch + 1}/{epochs}")
        return
    with click.progressbar(length=epochs, label=f"training {label}", file=sys.stderr) as bar:
        seen = [0]  # the epoch bar moves once per epoch, at the epoch's first batch

        def update(epoch: int, n: int) -> None:
            if epoch + 1 > seen[0]:
                seen[0] = epoch + 1
                bar.update(1)

        yield update
