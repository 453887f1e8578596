"""int8: every committed artifact quantised, loaded and run; its report computed and held to robust facts
only (the report is the claim, not a 1e-5 parity)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
from edge_helpers import rows_of
from helpers import ARTIFACTS, TASKS, run_cli, snapshot

from edgeclf.export.int8 import int8_report, quantize_int8
from edgeclf.runtime import Manifest
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
    # the report's figures, computed here from the two files
    f_test, q_test = _probabilities(session(src), ds.x_test), _probabilities(q, ds.x_test)  # (N, C)
    f_check, q_check = _probabilities(session(src), rows_of(task)), _probabilities(q, rows_of(task))  # (M, C)
    acc_f, acc_q = (f_test.argmax(1) == ds.y_test).mean(), (q_test.argmax(1) == ds.y_test).mean()
    agree = f_check.argmax(1) == q_check.argmax(1)
    assert report["test_accuracy"]["float32"] == pytest.approx(acc_f)
    assert report["test_accuracy"]["delta"] == pytest.approx(acc_q - acc_f)
    assert report["check"]["rows"] == len(agree) and report["check"]["label_agreement"] == pytest.approx(agree.mean())
    assert report["check"]["max_abs_probability_diff"] == pytest.approx(np.abs(f_check - q_check).max())
    assert np.abs(f_check - q_check).max() > 1e-4  # the int8 file really computes something else
    # measured (per-tensor / per-channel): accuracy delta 0 / 0 except blobs per-channel -0.5 point;
    # check-set agreement 0.976-0.997. Floors with room for another CPU's rounding:
    assert report["test_accuracy"]["delta"] >= -0.05
    assert report["check"]["label_agreement"] >= 0.95
    assert set(report["recall"]) == set(classes)
    probs = q.run(["probabilities"], {"input": rows_of(task)[:64]})[0]  # (64, C)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)  # the head stays float


def _probabilities(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """Every row through a batch-64 file, the last chunk padded with zeros."""
    x = np.asarray(x, np.float32)
    rows = np.concatenate([x, np.zeros((-len(x) % 64, x.shape[1]), np.float32)])
    out = [sess.run(["probabilities"], {"input": rows[i:i + 64]})[0] for i in range(0, len(rows), 64)]
    return np.concatenate(out)[:len(x)]


def test_int8_refuses_bad_calibration(tmp_path):
    src = ARTIFACTS / "circles" / "model.b64.onnx"
    with pytest.raises(InputError, match=r"expected \(N >= 1, 2\)"):
        quantize_int8(src, tmp_path / "q.onnx", np.zeros((10, 3)))
    with pytest.raises(InputError, match="finite"):
        quantize_int8(src, tmp_path / "q.onnx", np.full((10, 2), np.nan))
    assert not any(tmp_path.iterdir())


def test_an_int8_file_that_does_not_pay_is_refused_unless_allowed(tmp_path):
    """circles (151 parameters): its int8 file is larger than the float one. Refused with one line, the folder
    untouched; written with --allow-lossy-int8, and reported where it is made."""
    shutil.copytree(ARTIFACTS / "circles", tmp_path / "circles")
    before = snapshot(tmp_path / "circles")
    args = ("export", "circles", "--out", tmp_path, "--batch-size", "1", "--format", "int8")
    res = run_cli(*args)
    assert res.exit_code == 1 and "int8 refused: model.b1.int8.onnx" in res.output and "--allow-lossy-int8" in res.output
    assert "x its float32 file's bytes" in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert snapshot(tmp_path / "circles") == before
    res = run_cli(*args, "--allow-lossy-int8")
    assert res.exit_code == 0, res.output
    entry = Manifest.read(tmp_path / "circles")[0].files_of("onnx-int8")[0]
    assert entry.details["bytes.ratio"] > 1 and "lossy_allowed" in entry.details
    assert f"int8 model.b1.int8.onnx: {entry.details['bytes.ratio']:.2f}x the float file's bytes" in res.output


@pytest.mark.parametrize("details,said", [
    ({"bytes.ratio": 0.4, "check.label_agreement": 0.999}, None),
    ({"bytes.ratio": 1.4, "bytes.int8": 5502, "bytes.float32": 3945, "check.label_agreement": 1.0},
     "1.40x its float32 file's bytes (5,502 vs 3,945)"),
    ({"bytes.ratio": 0.5, "check.label_agreement": 0.971, "check.max_abs_probability_diff": 0.93},
     "labels agree with float32 on 97.10% of the check rows (< 99%), max probability difference 0.93"),
])
def test_lossy_names_each_reason(details, said):
    from edgeclf.export.int8 import lossy

    assert lossy(details) == said


@pytest.mark.parametrize(("agreement", "shown"), [(0.98995, "98.995%"), (0.989996, "98.999%"),
                                                  (0.98999999999, "98.999%"), (0.9899, "98.99%"), (0.99, "99.00%"),
                                                  (0.9951, "99.51%")])
def test_a_refused_agreement_never_reads_as_the_limit(agreement: float, shown: str) -> None:
    from edgeclf.export.int8 import MIN_AGREEMENT, share

    assert MIN_AGREEMENT == 0.99 and share(agreement) == shown
