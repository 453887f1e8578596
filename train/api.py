"""One call per stage for the CLI and for Python users: train a task into its artifact folder."""

from __future__ import annotations

from pathlib import Path

from edgeclf.artifact.store import writable_parent
from edgeclf.train.checkpoint import save_training
from edgeclf.train.loop import TrainConfig, TrainResult, train
from edgeclf.train.model import ModelConfig
from edgeclf.train.tasks import TaskSpec, get_task


def train_task(task: str, out: Path | str = "artifacts", *, hidden: tuple[int, ...] | None = None,
               activation: str | None = None, progress: bool = False, **overrides: object) -> TrainResult:
    """Train `task` with its registry defaults (overridable) and write out/<task>/ checkpoint + metrics.

    overrides: any TrainConfig field (epochs, lr, optimizer, seed, batch_size, device, weight_decay).
    """
    return train_spec(get_task(task), out, hidden=hidden, activation=activation, progress=progress, **overrides)


def train_spec(spec: TaskSpec, out: Path | str, *, hidden: tuple[int, ...] | None = None,
               activation: str | None = None, progress: bool = False, **overrides: object) -> TrainResult:
    folder = Path(out) / spec.name
    writable_parent(folder)  # fail before training, not after
    cfg = TrainConfig.defaults(spec, **overrides)
    model_cfg = ModelConfig(
        spec.name, len(spec.features), spec.n_classes,
        spec.hidden if hidden is None else tuple(hidden),
        spec.activation if activation is None else activation,
        spec.standardize,
    )
    data = spec.dataset()
    result = train(spec, cfg, model_cfg, data, progress=progress)
    save_training(result, spec, data, folder)
    return result
