"""onnxruntime's mobile usability checker on every committed artifact: NNAPI and CoreML must take the whole
graph ("YES")."""

from __future__ import annotations

import onnx
import pytest
from edge_helpers import mobile_usability
from helpers import ARTIFACTS, TASKS
from onnx import TensorProto, helper

EPS = ("NNAPI", "CoreML NeuralNetwork", "CoreML MLProgram")


@pytest.mark.parametrize("task", TASKS)
def test_mobile_usability_says_yes(task):
    """The binary head is sigmoid(z * [-1, 1]): no Neg, which CoreML does not take (it said MAYBE before)."""
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
