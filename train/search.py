"""The recipe search of a user's table: each of the task's candidate settings trains with early stopping on the
same validation split, and the one with the lowest validation log loss is kept (the test rows are never looked at).
A multi-label table searches the same way: its loss is binary cross-entropy, its validation rows the ones its
thresholds are chosen on (Dataset.validation).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from edgeclf.train.loop import TrainConfig, TrainResult, train
from edgeclf.train.model import ModelConfig
from edgeclf.train.tasks import Candidate, Dataset, TaskSpec

# Options that choose what the search would: given any of them, the one setting asked for trains instead.
CHOSEN_BY_SEARCH = ("lr", "weight_decay", "batch_size", "optimizer", "patience")


@dataclass(frozen=True)
class Chosen:
    result: TrainResult
    config: TrainConfig
    model_config: ModelConfig


def searches(spec: TaskSpec, hidden: tuple[int, ...] | None, overrides: dict[str, object]) -> bool:
    """Whether train_spec searches: the task has candidates and the caller fixed none of what they set."""
    fixed = hidden is not None or any(overrides.get(k) is not None for k in CHOSEN_BY_SEARCH)
    return bool(spec.candidates) and not fixed


def search(spec: TaskSpec, cfg: TrainConfig, model_cfg: ModelConfig, data: Dataset, progress: bool) -> Chosen:
    """Train every candidate (cfg gives the rest: epochs, patience, seed, device); keep the lowest best validation
    loss (the first on a tie). metrics["search"] lists what each candidate reached."""
    tried: list[tuple[float, Chosen]] = []
    for cand in spec.candidates:
        c_cfg, c_model = _apply(cand, cfg, model_cfg)
        r = train(spec, c_cfg, c_model, data, progress=progress)
        stop = r.metrics.get("early_stopping")
        loss = float(stop["best_val_loss"]) if stop else float(r.metrics["train_loss"])
        tried.append((loss, Chosen(r, c_cfg, c_model)))
    pick = min(range(len(tried)), key=lambda i: tried[i][0])
    chosen = tried[pick][1]
    chosen.result.metrics["search"] = {
        "by": _by(spec, any("early_stopping" in c.result.metrics for _, c in tried)),
        "chosen": pick, "candidates": [_row(cand, c) for cand, (_, c) in zip(spec.candidates, tried)]}
    return chosen


def _by(spec: TaskSpec, validated: bool) -> str:
    """The rule in words: a multi-label model's loss is the mean binary cross-entropy over its labels."""
    loss = "binary cross-entropy (mean over the labels)" if spec.multilabel else "log loss"
    return f"lowest validation {loss} (early_stopping.best_val_loss)" if validated else \
        "lowest training loss (no validation rows)"


def _apply(cand: Candidate, cfg: TrainConfig, model_cfg: ModelConfig) -> tuple[TrainConfig, ModelConfig]:
    return (replace(cfg, lr=cand.lr, weight_decay=cand.weight_decay, batch_size=cand.batch_size),
            replace(model_cfg, hidden=cand.hidden))


def _row(cand: Candidate, c: Chosen) -> dict[str, Any]:
    stop = c.result.metrics.get("early_stopping") or {}
    return {**cand.as_dict(), "best_val_loss": stop.get("best_val_loss"), "best_epoch": stop.get("best_epoch")}
