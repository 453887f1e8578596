"""Write a table as users' tables come: an id column, a string category, 5% missing numeric cells (and one
text column with too many values to be a category), label from a nonlinear rule that uses the
category. For the columns tests and the evaluation table of issue 23.

    python scripts/mixed_table.py /tmp/mixed.csv --rows 2000 --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

COLORS = ("red", "green", "blue", "amber")
MISSING = 0.05  # share of each numeric feature's cells left empty


def mixed_table(rows: int = 2000, seed: int = 0, missing: float = MISSING) -> pa.Table:
    """id (unique int), user_id (unique string), 4 numeric features of unequal scales with `missing` of their
    cells null, color (4 values), note (free text: about rows/4 distinct values, repeated), label (yes/no)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))  # (N, 4)
    color = rng.integers(0, len(COLORS), size=rows)  # (N,)
    shift = np.array([1.2, -1.0, 0.4, -0.6])[color]  # the category moves the boundary
    z = np.tanh(2 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * x[:, 3] + shift + 0.3 * rng.normal(size=rows)
    cols: dict[str, pa.Array] = {"id": pa.array(np.arange(1, rows + 1)),
                                 "user_id": pa.array([f"u{int(v):07d}" for v in rng.permutation(rows) + 1000])}
    scales = (1.0, 10.0, 0.1, 1000.0)
    for j in range(4):
        cells = (x[:, j] * scales[j] + 5 * j).round(6)
        cols[f"f{j}"] = pa.array(cells, mask=rng.random(rows) < missing)
    cols["color"] = pa.array([COLORS[c] for c in color])
    cols["note"] = pa.array([f"w{int(v)}" for v in rng.integers(0, max(40, rows // 4), size=rows)])  # repeats
    cols["label"] = pa.array(np.where(z > 0, "yes", "no"))
    return pa.table(cols)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="a .csv or .parquet path")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--missing", type=float, default=MISSING)
    a = ap.parse_args()
    table = mixed_table(a.rows, a.seed, a.missing)
    out = Path(a.out)
    if out.suffix in (".parquet", ".pq"):
        pq.write_table(table, out)
    else:
        pcsv.write_csv(table, out)


if __name__ == "__main__":
    main()
