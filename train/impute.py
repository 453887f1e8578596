"""`--impute median`: the features with empty cells get the training split's median, stored in the model config
(so in the graph, the manifest and the C header) and applied to the rows in memory before training.

Off by default: filling silently hides a data problem (a broken sensor, a failed join) and changes what the
model sees without the user deciding it; without it an empty cell stays a one-line error naming the row."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgeclf.runtime.errors import InputError

IMPUTE_CHOICES = ("median",)
Fill = tuple[float | None, ...]


def check_impute(impute: str | None) -> None:
    if impute is not None and impute not in IMPUTE_CHOICES:
        raise InputError(f"impute {impute!r}: expected one of {', '.join(IMPUTE_CHOICES)} (or none)")


def median_fill(x_train: np.ndarray, empty: np.ndarray, features: Sequence[str], where: str) -> Fill | None:
    """Per feature: the median of x_train's present values where `empty` (F,) says the table had an empty cell,
    else None; None when no feature had one. Rounded to float32, the value every runtime computes with."""
    if not empty.any():
        return None
    fill: list[float | None] = []
    for j, name in enumerate(features):
        if not empty[j]:
            fill.append(None)
            continue
        present = x_train[:, j][~np.isnan(x_train[:, j])]
        if not present.size:
            raise all_empty(where, name)
        fill.append(float(np.float32(np.median(present.astype(np.float64)))))
    return tuple(fill)


def all_empty(where: str, name: str) -> InputError:
    return InputError(f"{where}: column {name!r} is empty in every training row: nothing to take a median of; leave "
                      "it out of the features", column=name)


def apply_fill(x: np.ndarray, fill: Fill) -> None:
    """In place: NaN cells of the filled features take their fill value, as the graph's first op does."""
    for j, v in enumerate(fill):
        if v is not None:
            col = x[:, j]
            col[np.isnan(col)] = v


def fill_note(fill: Fill | None, empty_cells: np.ndarray, features: Sequence[str], where: str) -> str:
    """The one line saying what impute filled (or that nothing was)."""
    if fill is None:
        return f"{where}: impute: no empty cell in any feature, nothing filled"
    shown = ", ".join(f"{features[j]!r} ({int(empty_cells[j])} cells, median {v:.6g})"
                      for j, v in enumerate(fill) if v is not None)
    return f"{where}: empty cells filled with the training median (in the model too): {shown}"
