"""The .ort writer: every committed artifact's ONNX files converted, loaded by onnxruntime and run on the same
rows as the .onnx files, held to the tolerance policy."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from edge_helpers import check_policy, rows_of
from helpers import ARTIFACTS, TASKS

from edgeclf.export.ort_format import CONFIG_NAME, write_ort
from edgeclf.export.parity import run_chunked
from edgeclf.runtime.errors import InputError


def outputs(path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = sess.get_inputs()[0].shape[0]
    return run_chunked(lambda c: tuple(sess.run(["logits", "probabilities"], {"input": c})), x, batch)


@pytest.mark.parametrize("task", TASKS)
def test_ort_matches_onnx(task, tmp_path):
    written = write_ort(ARTIFACTS / task, tmp_path)
    assert [p.name for p in written] == [
        "model.b1.ort", "model.b1024.ort", "model.b16384.ort", "model.b4096.ort", "model.b64.ort", CONFIG_NAME]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)  # no temp left over
    x = rows_of(task)
    for ort_file in written[:-1]:
        ref = outputs(ARTIFACTS / task / ort_file.with_suffix(".onnx").name, x)
        figures = check_policy(*outputs(ort_file, x), *ref)
        print(task, ort_file.name, ort_file.stat().st_size, figures)
    config = (tmp_path / CONFIG_NAME).read_text()
    assert "ai.onnx;" in config and "Gemm" in config and str(tmp_path) not in config


def test_ort_conversion_is_deterministic_in_content(tmp_path):
    """Twice: the same config bytes, the same .ort size and bitwise the same outputs (the .ort bytes
    themselves differ in the order of one hash-map section; see export/ort_format.py)."""
    a = write_ort(ARTIFACTS / "spirals" / "model.b64.onnx", tmp_path / "a")
    b = write_ort(ARTIFACTS / "spirals" / "model.b64.onnx", tmp_path / "b")
    assert [p.name for p in a] == ["model.b64.ort", CONFIG_NAME]
    assert a[1].read_bytes() == b[1].read_bytes()
    assert a[0].stat().st_size == b[0].stat().st_size
    x = rows_of("spirals")
    for got, ref in zip(outputs(a[0], x), outputs(b[0], x)):
        assert np.array_equal(got, ref)


def test_ort_refuses_what_is_not_onnx(tmp_path):
    with pytest.raises(InputError, match="no model.bB.onnx file"):
        write_ort(tmp_path, tmp_path / "out")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="is not an ONNX file"):
        write_ort(tmp_path / "notes.txt", tmp_path / "out")
