"""The graph-layout candidates of export.layout, timed side by side on one trained artifact (needs torch + onnx).

Each candidate is exported at every batch size of the artifact's ladder into a temporary folder, opened with one
intra-op thread (the Classifier's setting) and run on the same rows, interleaved; its largest probability
difference from eager PyTorch is shown beside its time, so a faster but wrong arrangement cannot hide.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeclf.bench.measure import Timing, time_side_by_side
from edgeclf.runtime import Manifest
from edgeclf.runtime.contract import INPUT_NAME, PROBABILITIES

CANDIDATES = ("as-traced", "row-major", "feature-major")


@dataclass(frozen=True)
class LayoutTiming:
    task: str
    layout: str
    batch: int
    timing: Timing
    max_abs_diff: float  # probabilities vs eager PyTorch, same rows
    chosen: bool  # what `--layout auto` exports at this batch size


def compare_layouts(folder: Path, batches: Sequence[int] | None = None) -> list[LayoutTiming]:
    """Every candidate at every batch size of the artifact's ladder (or those of `batches` it has)."""
    import onnxruntime as ort
    import torch

    from edgeclf.export.describe import graph_docs
    from edgeclf.export.formats import write_onnx
    from edgeclf.export.layout import Arranged, arrange, mlp_of
    from edgeclf.export.subject import from_trained
    from edgeclf.train.checkpoint import load_checkpoint

    manifest, root = Manifest.read(folder)
    s = from_trained(load_checkpoint(root, manifest.task))
    mlp = mlp_of(s.model)
    if mlp is None:
        return []
    modules: dict[str, Any] = {"as-traced": s.model, "row-major": Arranged(mlp, "row-major").eval(),
                               "feature-major": Arranged(mlp, "feature-major").eval()}
    rng = np.random.default_rng(0)
    out: list[LayoutTiming] = []
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    with tempfile.TemporaryDirectory(prefix="edgeclf-layouts-") as tmp:
        for e in manifest.onnx_files:
            b = e.batch_size
            if batches is not None and b not in batches:
                continue
            x = rng.uniform(manifest.domain.low, manifest.domain.high, (b, len(manifest.features))).astype(np.float32)
            with torch.inference_mode():
                ref = s.model(torch.from_numpy(x))[1].numpy()
            sessions = {}
            for name, module in modules.items():
                path = Path(tmp) / f"{name}.b{b}.onnx"
                write_onnx(module, s.n_features, b, e.opset or 20, path, {}, graph_docs(s))
                sessions[name] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            calls = {name: partial(sess.run, [PROBABILITIES], {INPUT_NAME: x}) for name, sess in sessions.items()}
            chosen = arrange(s.model, b)[1]
            for t in time_side_by_side(calls, b):
                got = sessions[t.engine].run([PROBABILITIES], {INPUT_NAME: x})[0]
                out.append(LayoutTiming(manifest.task, t.engine, b, t, float(np.abs(got - ref).max()),
                                        t.engine == chosen))
    return out
