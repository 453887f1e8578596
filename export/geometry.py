"""Where an export is checked and pictured: the data's box and points spread over it. numpy only."""

from __future__ import annotations

import numpy as np

from edgeclf.runtime.manifest import Domain

GRID = 201  # parity-check grid for two features: 201 x 201 points
PICTURE_GRID = 101  # decision-region pictures: 101 x 101 points, fine enough to show the boundary
BOX_ROWS = 40_000  # for more than two features: uniform points in the box instead of a grid
PAD = 0.1  # margin around the data: in the features' units for the toy tasks, a fraction of each range for tables


def domain_of(x: np.ndarray, pad: float = PAD, relative: bool = False) -> Domain:
    """The data range, widened by pad (absolute, or relative to each feature's range)."""
    lo, hi = x.min(0).astype(np.float64), x.max(0).astype(np.float64)  # (F,)
    margin = pad * (hi - lo) if relative else np.full_like(lo, pad)
    return Domain(tuple(round(float(v), 6) for v in lo - margin), tuple(round(float(v), 6) for v in hi + margin))


def grid_points(domain: Domain, n: int = GRID) -> np.ndarray:
    """(n*n, 2) row-major grid over a 2-D domain, y outer, x inner."""
    xs = np.linspace(domain.low[0], domain.high[0], n, dtype=np.float32)
    ys = np.linspace(domain.low[1], domain.high[1], n, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)
    pts: np.ndarray = np.c_[gx.ravel(), gy.ravel()].astype(np.float32)
    return pts


def box_points(domain: Domain) -> np.ndarray:
    """Points spanning the domain: the grid for two features, else BOX_ROWS uniform rows plus the box's corners
    along each axis (numpy's Generator draws the same numbers on every machine)."""
    if len(domain.low) == 2:
        return grid_points(domain)
    lo, hi = np.array(domain.low), np.array(domain.high)
    rng = np.random.default_rng(0)
    pts = rng.uniform(lo, hi, (BOX_ROWS, len(lo)))
    return np.concatenate([pts, lo[None], hi[None]]).astype(np.float32)


def box_description(domain: Domain) -> str:
    if len(domain.low) == 2:
        return f"a {GRID}x{GRID} grid over the data range +- {PAD}"
    return f"{BOX_ROWS + 2} points spread uniformly over the data's box (each range +- {PAD:.0%})"
