"""checkpoint.pt + metrics.json: the trained model's weights, its config and its metrics, saved and loaded safely."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeclf.artifact.store import CHECKPOINT, METRICS, read_json, staged_folder, write_json
from edgeclf.runtime.errors import ArtifactError
from edgeclf.tables.stats import FeatureStats
from edgeclf.train.loop import TrainResult
from edgeclf.train.model import ModelConfig, build_mlp
from edgeclf.train.tasks import Dataset, TaskSpec

CHECKPOINT_FORMAT = "edgeclf.checkpoint/2"
KEPT_ROWS = 5000  # rows of each split kept for export checks and pictures: enough, and small on disk


@dataclass(frozen=True)
class TaskInfo:
    """What export, verify and plot need to know of the task, saved beside the weights: no registry lookup
    after training, so a user's own table exports exactly like a built-in task."""

    name: str
    classes: tuple[str, ...]
    features: tuple[str, ...]
    description: str
    train_rows: int
    test_rows: int
    split: str
    target_accuracy: float
    stats: dict[str, list[float]]  # min, max, mean, std: one value per feature, over the whole train split
    thresholds: tuple[float, ...] = ()  # a multi-label model's, one per label (classes are then the labels)

    @classmethod
    def of(cls, spec: TaskSpec, data: Dataset, stats: FeatureStats | None = None,
           thresholds: tuple[float, ...] = ()) -> TaskInfo:
        """stats: of every training row, when data holds only some of them (a streamed table)."""
        stats = stats or FeatureStats.of(data.x_train)
        return cls(spec.name, spec.classes, spec.features, spec.description, stats.n, len(data.x_test),
                   data.split, spec.target_accuracy, stats.as_dict(), thresholds)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.thresholds:  # single-label checkpoints are written exactly as before the field existed
            del d["thresholds"]
        else:
            d["thresholds"] = list(self.thresholds)
        return {**d, "classes": list(self.classes), "features": list(self.features)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskInfo:
        return cls(**{**d, "classes": tuple(d["classes"]), "features": tuple(d["features"]),
                      "thresholds": tuple(d.get("thresholds", ()))})


@dataclass(frozen=True)
class Trained:
    """A checkpoint read back: the model, its config, the task, the kept data and the metrics."""

    model: torch.nn.Sequential  # eval mode, CPU
    config: ModelConfig
    task: TaskInfo
    data: Dataset  # the kept rows of each split (at most KEPT_ROWS)
    metrics: dict[str, Any]


def save_training(result: TrainResult, spec: TaskSpec, data: Dataset, out: Path, info: TaskInfo | None = None) -> None:
    """Write checkpoint.pt and metrics.json as a new version of folder out (stale exports dropped). info: the
    task as measured (default: TaskInfo.of(spec, data))."""
    kept = {k: torch.from_numpy(np.ascontiguousarray(getattr(data, k)[:KEPT_ROWS]))
            for k in ("x_train", "y_train", "x_test", "y_test")}
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "model_config": result.model_config.to_dict(),
        "train_config": result.metrics["train_config"],
        "task": (info or TaskInfo.of(spec, data)).to_dict(),
        "data": kept,
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
    }
    with staged_folder(out) as tmp:
        torch.save(ckpt, tmp / CHECKPOINT)  # written under its final name: the archive embeds it
        write_json(tmp / METRICS, result.metrics)


def checkpoint_path(folder: Path, task: str | None = None) -> Path:
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        name = task or Path(folder).name
        elsewhere = sorted(p.parent.parent for p in Path().glob(f"*/{name}/{CHECKPOINT}"))
        advice = f"run `edgeclf train {name}` first (with the same --out as this command)"
        if elsewhere:  # perhaps trained with another --out: name the option that finds it
            advice += f", or pass --out {elsewhere[0]}: {elsewhere[0] / name} has one"
        raise ArtifactError(f"no checkpoint at {path}: {advice}")
    return path


def load_checkpoint(folder: Path, task: str | None = None) -> Trained:
    """Rebuild the model from the checkpoint's own config (never code defaults); weights_only=True."""
    path = checkpoint_path(folder, task)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise KeyError("format")
        cfg = ModelConfig.from_dict(ckpt["model_config"])
        info = TaskInfo.from_dict(ckpt["task"])
        kept = {k: ckpt["data"][k].numpy() for k in ("x_train", "y_train", "x_test", "y_test")}
        data = Dataset(**kept, split=info.split)
        model = build_mlp(cfg)
        model.load_state_dict(ckpt["state_dict"])
    except Exception as e:  # a corrupt zip, a hostile pickle, a foreign dict: all refused alike
        raise ArtifactError(
            f"{path} is not a readable edgeclf checkpoint ({type(e).__name__}): retrain with `edgeclf train`"
        ) from None
    if task is not None and cfg.task != task:
        raise ArtifactError(f"{path} is a checkpoint of task {cfg.task!r}, expected {task!r}")
    metrics = read_json(Path(folder) / METRICS)
    if not isinstance(metrics, dict):
        raise ArtifactError(f"{Path(folder) / METRICS}: expected a JSON object")
    return Trained(model.eval(), cfg, info, data, metrics)
