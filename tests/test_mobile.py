"""onnxruntime's mobile usability checker on every committed artifact: NNAPI and CoreML must take the whole
graph ("YES")."""

from __future__ import annotations

import json

import onnx
import pytest
from edge_helpers import mobile_usability
from helpers import ARTIFACTS, TASKS
from onnx import TensorProto, helper

EPS = ("NNAPI", "CoreML NeuralNetwork", "CoreML MLProgram")


def _binary(task: str) -> bool:
    return json.loads((ARTIFACTS / task / "manifest.json").read_text())["kind"] == "binary"


@pytest.mark.parametrize(
    "task",
    [pytest.param(t, marks=pytest.mark.xfail(
        strict=True, reason="the committed binary head uses Neg, which CoreML does not take (MAYBE); a Mul by a "
                            "constant [-1, 1] gives YES: remove this mark when the artifacts are re-exported"))
     if _binary(t) else t for t in TASKS],
)
def test_mobile_usability_says_yes(task):
    verdicts = mobile_usability(ARTIFACTS / task / "model.b1.onnx")
    assert {ep: verdicts.get(ep) for ep in EPS} == dict.fromkeys(EPS, "YES"), verdicts["log"]


def test_checker_reports_an_op_coreml_lacks(tmp_path):
    """The parser reads a non-YES verdict too: a graph with Neg (which CoreML lacks) is not a YES for CoreML."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    nodes = [helper.make_node("Neg", ["x"], ["n"]), helper.make_node("Sigmoid", ["n"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 20)])
    onnx.save(model, tmp_path / "neg.onnx")
    verdicts = mobile_usability(tmp_path / "neg.onnx")
    assert verdicts["NNAPI"] == "YES" and verdicts["CoreML MLProgram"] != "YES", verdicts["log"]
