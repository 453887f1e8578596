"""int8: every committed artifact quantised, loaded and run; its report computed and held to robust facts
only (the report is the claim, not a 1e-5 parity)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from edge_helpers import rows_of
from helpers import ARTIFACTS, TASKS

from edgeclf.export.int8 import int8_report, quantize_int8
from edgeclf.runtime.errors import InputError


def session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
@pytest.mark.parametrize("task", TASKS)
def test_int8_report(task, per_channel, tmp_path):
    from edgeclf.export.describe import graph_docs
    from edgeclf.export.formats import write_onnx
    from edgeclf.export.subject import from_trained
    from edgeclf.train.checkpoint import load_checkpoint

    trained = load_checkpoint(ARTIFACTS / task)
    ds = trained.data
    classes = json.loads((ARTIFACTS / task / "manifest.json").read_text())["classes"]
    # as the export does (export/edge.py write_int8): quantise the module as traced, not the shipped arrangement
    s = from_trained(trained)
    traced = tmp_path / "traced" / "model.b64.onnx"
    traced.parent.mkdir()
    write_onnx(s.model, s.n_features, 64, 20, traced, {}, graph_docs(s))
    src, dst = ARTIFACTS / task / "model.b64.onnx", tmp_path / "model.b64.int8.onnx"
    quantize_int8(traced, dst, ds.x_train, per_channel=per_channel)
    assert sorted(p.name for p in tmp_path.iterdir()) == [dst.name, "traced"]  # the temp name is gone
    q = session(dst)
    assert any(n.op_type == "QuantizeLinear" for n in __import__("onnx").load(str(dst)).graph.node)
    report = int8_report(session(src), q, ds.x_test, ds.y_test, rows_of(task), classes, float_path=src, int8_path=dst)
    print(task, "per-channel" if per_channel else "per-tensor", report)
    assert report["bytes"] == {"float32": src.stat().st_size, "int8": dst.stat().st_size,
                               "ratio": dst.stat().st_size / src.stat().st_size,
                               "grew": dst.stat().st_size > src.stat().st_size}
    # measured (per-tensor / per-channel): accuracy delta 0 / 0 except blobs per-channel -0.5 point;
    # check-set agreement 0.976-0.997. Floors with room for another CPU's rounding:
    assert report["test_accuracy"]["delta"] >= -0.05
    assert report["check"]["label_agreement"] >= 0.95
    assert set(report["recall"]) == set(classes)
    probs = q.run(["probabilities"], {"input": rows_of(task)[:64]})[0]  # (64, C)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)  # the head stays float


def test_int8_refuses_bad_calibration(tmp_path):
    src = ARTIFACTS / "circles" / "model.b64.onnx"
    with pytest.raises(InputError, match=r"expected \(N >= 1, 2\)"):
        quantize_int8(src, tmp_path / "q.onnx", np.zeros((10, 3)))
    with pytest.raises(InputError, match="finite"):
        quantize_int8(src, tmp_path / "q.onnx", np.full((10, 2), np.nan))
    assert not any(tmp_path.iterdir())
