"""A second client: examples/node/predict.mjs runs every committed artifact with onnxruntime-node (npm, pinned by
web/package-lock.json) from its manifest.json alone, and must agree with the Python Classifier (probabilities
within 1e-5; labels equal on every row whose top-two margin exceeds 1e-4, GUIDE §3).

Needs node and `npm ci --prefix web` (make setup). Without them the tests skip with the reason, except where
EDGECLF_REQUIRE_BROWSER=1 (.ci/run), where they fail.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from edge_helpers import ATOL, MARGIN, margin
from helpers import ARTIFACTS, MULTILABEL_TASKS, ROOT, TASKS, node_missing, skip_or_fail

from edgeclf.runtime import Classifier, plan_chunks

SCRIPT = ROOT / "examples" / "node" / "predict.mjs"
N_ROWS = 777  # not a batch size: full runs of 64 or one padded run of 1024 (the plan picks the latter)


@pytest.fixture(scope="module")
def node() -> str:
    reason = node_missing()
    if reason:
        skip_or_fail(reason, browser=True)
    return "node"


def domain_rows(clf: Classifier, n: int, seed: int = 3) -> np.ndarray:
    """(n, F) float32: the domain's corners-ish (low, high, middle) then uniform points over the whole domain."""
    lo, hi = np.array(clf.manifest.domain.low), np.array(clf.manifest.domain.high)
    fixed = np.stack([lo, hi, (lo + hi) / 2])
    rand = np.random.default_rng(seed).uniform(lo, hi, (n - len(fixed), len(lo)))
    return np.concatenate([fixed, rand]).astype(np.float32)


def run_script(folder: Path, rows: object, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))
    return subprocess.run(["node", str(SCRIPT), str(folder), str(path)], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("task", TASKS)
def test_node_matches_python(node, task, tmp_path):
    clf = Classifier.load(ARTIFACTS / task)
    x = domain_rows(clf, N_ROWS)
    done = run_script(ARTIFACTS / task, x.tolist(), tmp_path)  # float32 values, exact in JSON doubles
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["task"] == task and got["classes"] == list(clf.classes_)
    probs = np.array(got["probabilities"], np.float64)  # (N, C)
    ref = clf.predict_proba(x).astype(np.float64)
    assert probs.shape == ref.shape
    diff = np.abs(probs - ref).max()
    same = np.array(got["labels"]) == clf.predict(x)
    print(f"{task}: {len(x)} rows, max |diff| {diff:.2e}, labels {same.mean():.2%}")
    assert diff <= ATOL
    assert same[margin(ref) > MARGIN].all()


@pytest.mark.parametrize("task", MULTILABEL_TASKS)
def test_node_multilabel_matches_python(node, task, tmp_path):
    """A multi-label artifact: every label's probability, and the labels at or above their thresholds (a row may
    have none), as the Python runtime's (N, L) decisions, wherever |p - threshold| exceeds the margin."""
    clf = Classifier.load(ARTIFACTS / task)
    x = domain_rows(clf, N_ROWS)
    done = run_script(ARTIFACTS / task, x.tolist(), tmp_path)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    probs = np.array(got["probabilities"], np.float64)  # (N, L)
    ref = clf.predict_proba(x).astype(np.float64)
    assert probs.shape == ref.shape and np.abs(probs - ref).max() <= ATOL
    thresholds = np.array(json.loads((ARTIFACTS / task / "manifest.json").read_text())["thresholds"])
    mine = np.array([[c in labels for c in clf.classes_] for labels in got["labels"]])  # (N, L) from the names
    decisive = np.abs(ref - thresholds) > MARGIN
    assert np.array_equal(mine[decisive], clf.predict(x)[decisive])
    assert (ref >= thresholds).any() and not (ref >= thresholds).all()  # both answers occur on these rows


def test_node_plan_is_the_runtimes(node):
    """The script chunks and pads exactly like the Python runtime (and the web page)."""
    sizes = [1, 64, 1024, 4096, 16384]
    ns = [1, 2, 63, 64, 65, 777, 1023, 1025, 16384, 16385, 40000]
    code = (f"import {{ plan }} from {json.dumps(SCRIPT.as_uri())};\n"
            f"console.log(JSON.stringify({json.dumps(ns)}.map((n) => plan(n, {json.dumps(sizes)}))));")
    done = subprocess.run(["node", "--input-type=module", "-e", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[list(c) for c in plan_chunks(n, sizes)] for n in ns]


def one_line_error(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1, done.stderr  # no stack trace
    for f in fragments:
        assert f in done.stderr, done.stderr


def test_node_refuses_a_tampered_file(node, artifact_copy, tmp_path):
    folder = artifact_copy("circles")
    f = folder / "model.b64.onnx"
    data = f.read_bytes()
    f.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    one_line_error(run_script(folder, [[0.0, 0.1]], tmp_path), 1, "model.b64.onnx: sha256", "does not match")
    f.unlink()
    one_line_error(run_script(folder, [[0.0, 0.1]], tmp_path), 1, "model.b64.onnx listed in the manifest is missing")


@pytest.mark.parametrize("rows, fragment", [
    ([[0.0, 0.1], [1.0]], "row 1: expected 2 finite numbers (x1, x2), got [1]"),
    ([[0.0, None]], "row 0: expected 2 finite numbers"),
    ({"x1": 0}, "expected a JSON array of rows"),
], ids=["short-row", "null", "not-a-list"])
def test_node_refuses_bad_rows(node, rows, fragment, tmp_path):
    one_line_error(run_script(ARTIFACTS / "circles", rows, tmp_path), 1, fragment)


CATEGORY_ROWS = [[None, 5.0, "red"], [0.5, 2.0, "blue"], [-1.2, 7.5, "green"], [None, 3.0, 0], [0.25, 6.0, 2],
                 [0.25, 6.0, "red"], [None, 9.0, "green"], [1.5, 4.0, 1]] * 10  # 80 rows: a batch of 64, then 16 of 1


@pytest.mark.slow  # conftest's category_root trains and exports a model (~30 s)
def test_node_category_model_matches_python(node, category_root, tmp_path):
    """A category column as text or index (the manifest's vocabulary -> the index the graph one-hots, as the Python
    runtime feeds it) and null in the column the model fills: the Classifier's answers on the same rows."""
    clf = Classifier.load(category_root / "shop")
    done = run_script(category_root / "shop", CATEGORY_ROWS, tmp_path)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    ref = clf.predict_proba(CATEGORY_ROWS).astype(np.float64)  # None -> NaN, text -> index: the runtime's reading
    diff = np.abs(np.array(got["probabilities"]) - ref).max()
    same = np.array(got["labels"]) == clf.predict(CATEGORY_ROWS)
    print(f"shop: {len(CATEGORY_ROWS)} rows, max |diff| {diff:.2e}, labels {same.mean():.2%}")
    assert diff <= ATOL
    assert same[margin(ref) > MARGIN].all()
    assert got["probabilities"][4] == got["probabilities"][5]  # a value's index and its text: the same input


@pytest.mark.slow  # conftest's category_root trains and exports a model (~30 s)
@pytest.mark.parametrize("row, fragments", [
    ([0.1, 5.0, "purple"], ["row 1, column 'color': \"purple\" is not a category seen in training",
                            'expected one of ["blue","green","red"]']),
    ([0.1, 5.0, 3], ["row 1, column 'color': 3 is not a category", "(or its index 0..2)"]),
    ([0.1, 5.0, None], ["row 1, column 'color': empty cell; expected one of"]),
    ([0.1, None, "red"], ["row 1, column 'b': expected a finite number", 'fills empty cells in ["a"] only']),
    ([0.1, 5.0], ["row 1: expected 3 values (a: a number or null, b: a number, color: a category), got [0.1,5]"]),
], ids=["unseen-text", "index-out-of-range", "empty-category", "null-not-filled", "short-row"])
def test_node_category_model_refuses_bad_values(node, category_root, row, fragments, tmp_path):
    one_line_error(run_script(category_root / "shop", [[0.0, 5.0, "red"], row], tmp_path), 1, *fragments)
