"""Graph layouts (export/layout.py): every arrangement is the trained function within the tolerance policy, the
rule picks the same layout on every machine, the manifest records it, and a row's outputs do not depend on the
batch size that ran it."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from edge_helpers import mobile_usability
from helpers import ARTIFACTS, TASKS, assert_clean_error, run_cli
from torch import nn

from edgeclf.export.checks import check_set, runner_of_session
from edgeclf.export.describe import graph_docs
from edgeclf.export.formats import write_onnx
from edgeclf.export.layout import FEATURE_MAJOR_MAX_WIDTH, Arranged, arrange, choose_layout, mlp_of
from edgeclf.export.parity import compare, run_chunked
from edgeclf.export.subject import from_trained
from edgeclf.runtime.errors import InputError
from edgeclf.train.checkpoint import load_checkpoint
from edgeclf.train.model import WithProbabilities

LAYOUT_TASKS = ("circles", "blobs", "iris", "spirals")  # binary, multiclass, standardised, wide


def subject(task):
    return from_trained(load_checkpoint(ARTIFACTS / task, task))


@pytest.mark.parametrize("task", LAYOUT_TASKS)
@pytest.mark.parametrize("layout", ["row-major", "feature-major"])
def test_each_layout_passes_the_policy_against_the_trained_module(task, layout, tmp_path):
    s = subject(task)
    checks = check_set(s.model, s.check_rows, s.domain, s.check_what)
    for batch in (1, 64):
        path = tmp_path / f"{layout}.b{batch}.onnx"
        write_onnx(Arranged(mlp_of(s.model), layout).eval(), s.n_features, batch, 20, path, {}, graph_docs(s))
        result = checks.check(path.name, runner_of_session(ort.InferenceSession(str(path),
                                                                            providers=["CPUExecutionProvider"])), batch)
        assert result, str(result)


def test_a_wrong_arrangement_fails_the_policy(tmp_path):
    """The check above can fail: a feature-major graph whose first layer lost its bias is refused."""
    s = subject("blobs")
    mlp = mlp_of(s.model)
    w, b, act = mlp.layers[0]
    broken = type(mlp)(mlp.mean, mlp.std, ((w, b * 0, act), *mlp.layers[1:]), mlp.binary)
    checks = check_set(s.model, s.check_rows, s.domain, s.check_what)
    path = tmp_path / "broken.onnx"
    write_onnx(Arranged(broken, "feature-major").eval(), s.n_features, 64, 20, path, {}, graph_docs(s))
    got = run_chunked(runner_of_session(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])),
                      checks.x, 64)
    assert not compare(path.name, got, checks.ref(64), checks.rounding(64))


def test_the_rule():
    narrow, wide = mlp_of(subject("circles").model), mlp_of(subject("spirals").model)
    assert narrow.max_width <= FEATURE_MAJOR_MAX_WIDTH < wide.max_width
    assert [choose_layout(narrow, b) for b in (1, 2, 64, 16384)] == ["row-major"] + ["feature-major"] * 3
    assert {choose_layout(wide, b) for b in (1, 64, 16384)} == {"row-major"}
    assert choose_layout(wide, 64, "feature-major") == "feature-major"
    with pytest.raises(InputError, match="unknown layout 'diagonal'"):
        choose_layout(narrow, 64, "diagonal")


def test_other_architectures_are_exported_as_traced():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(2, 4), nn.Linear(2, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x) * self.b(x)

    model = WithProbabilities(Net(), 4)
    assert mlp_of(model) is None
    assert arrange(model, 64) == (model, "as-traced")
    with pytest.raises(InputError, match="needs an MLP"):
        arrange(model, 64, "feature-major")
    seq = WithProbabilities(nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1)), 2)
    assert mlp_of(seq) is None  # an activation the arrangement does not write: traced as is


@pytest.mark.parametrize("task", TASKS)
def test_manifest_records_the_layout_the_rule_gives(task):
    manifest = json.loads((ARTIFACTS / task / "manifest.json").read_text())
    mlp = mlp_of(subject(task).model)
    for f in manifest["files"]:
        if f["format"] == "onnx":
            assert f["details"]["layout"] == choose_layout(mlp, f["batch_size"]), f["path"]
            nodes = [n.op_type for n in onnx.load(str(ARTIFACTS / task / f["path"])).graph.node]
            assert ("Transpose" in nodes) == (f["details"]["layout"] == "feature-major"), (f["path"], nodes)
            assert "Div" not in nodes and "Neg" not in nodes, (f["path"], nodes)  # folded std, no Neg


@pytest.mark.parametrize("task", TASKS)
def test_mobile_usability_of_the_largest_file(task):
    """The batch-1 file is checked in test_mobile.py; the largest one is feature-major for narrow models."""
    manifest = json.loads((ARTIFACTS / task / "manifest.json").read_text())
    big = max((f for f in manifest["files"] if f["format"] == "onnx"), key=lambda f: f["batch_size"])
    verdicts = mobile_usability(ARTIFACTS / task / big["path"])
    assert verdicts["NNAPI"] == "YES" and verdicts["CoreML MLProgram"] == "YES", verdicts["log"]


@pytest.mark.parametrize("task", ["blobs", "circles", "iris"])
def test_rows_do_not_depend_on_the_file_that_ran_them(task):
    """Bit for bit, every file of the ladder (row-major at 1, feature-major above) gives a row the same outputs
    wherever it sits in the batch: the Classifier mixes them freely. Every position of every file is checked
    (as many rows as the largest batch), in order and reversed, so each row also sits at a second position."""
    from edgeclf.runtime import Classifier

    clf = Classifier.load(ARTIFACTS / task, threads=1)
    n = max(clf.sessions)
    x = np.random.default_rng(5).uniform(clf.manifest.domain.low, clf.manifest.domain.high,
                                         (n, clf.n_features_in_)).astype(np.float32)
    reference = _run_file(clf.sessions[1], x, 1)  # (n, logits + probabilities), one row per call
    for b, sess in clf.sessions.items():
        for order in (1, -1):
            got = _run_file(sess, x[::order], b)[::order]
            rows = np.flatnonzero((got != reference).any(axis=1))  # a NaN would differ too
            assert rows.size == 0, f"batch {b}, {'reversed' if order < 0 else 'in order'}: rows {rows[:5]} differ"


def _run_file(sess, x: np.ndarray, b: int) -> np.ndarray:
    """Every row of x through one file of batch b, the last chunk padded with zeros."""
    pad = -len(x) % b
    rows = np.concatenate([x, np.zeros((pad, x.shape[1]), np.float32)])
    outs = [np.concatenate(sess.run(["logits", "probabilities"], {"input": rows[i:i + b]}), axis=1)
            for i in range(0, len(rows), b)]
    return np.concatenate(outs)[:len(x)]


def test_cli_layout_option(tmp_path):
    res = run_cli("export", "circles", "--layout", "diagonal", "--out", tmp_path)
    assert res.exit_code == 2 and "'diagonal'" in res.output
    res = run_cli("export", "--from", tmp_path / "m.pt2", "--features", "a,b", "--classes", "x,y",
                  "--check-data", tmp_path / "rows.csv", "--layout", "row-major", "--out", tmp_path)
    assert_clean_error(res, 2, "--layout row-major applies to edgeclf-trained MLPs")
