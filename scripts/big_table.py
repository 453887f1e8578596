"""Write a synthetic classification table (default 1,000,000 rows x 20 features, 3 classes) as Parquet or CSV,
for measuring `edgeclf train --data` on a big table (docs/scale.md, "Training on a big table").

    python scripts/big_table.py /tmp/big.parquet --rows 1000000 --features 20
"""

from __future__ import annotations

import argparse

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

CHUNK = 100_000  # rows generated and written at a time: the generator itself stays small


def chunk(rng: np.random.Generator, rows: int, features: int, w: np.ndarray) -> pa.Table:
    x = rng.normal(size=(rows, features))  # (N, F)
    z = np.tanh(x[:, :4]) @ w[:4] + 0.5 * x[:, 4:8] @ w[4:8] + 0.4 * rng.normal(size=(rows, w.shape[1]))  # (N, 3)
    y = np.argmax(z, axis=1)
    cols = {f"f{j:02d}": x[:, j] * (j + 1) + j for j in range(features)}  # unequal scales: standardisation matters
    return pa.table({**cols, "label": pa.array([f"class_{k}" for k in y])})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.features < 8:
        ap.error("--features: expected 8 or more (the classes depend on the first 8)")
    rng = np.random.default_rng(a.seed)
    w = rng.normal(size=(a.features, 3))
    parquet = a.out.endswith((".parquet", ".pq"))
    writer: pq.ParquetWriter | pcsv.CSVWriter | None = None
    for start in range(0, a.rows, CHUNK):
        t = chunk(rng, min(CHUNK, a.rows - start), a.features, w)
        if writer is None:
            writer = pq.ParquetWriter(a.out, t.schema) if parquet else pcsv.CSVWriter(a.out, t.schema)
        writer.write_table(t)
    if writer is not None:
        writer.close()


if __name__ == "__main__":
    main()
