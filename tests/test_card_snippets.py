"""The model card's "How to load it" snippets, extracted from a card generated for every committed artifact and
run as written, each in its own client: they must print the Python Classifier's label and probabilities (within
1e-5) for the card's example row.

Run here: Python (Classifier), the CLI, TorchScript and .pt2 (torch), Node (node + onnxruntime-node from
web/node_modules), the browser (headless Chromium + onnxruntime-web, like test_web.py), the C header (gcc, strict
flags), OpenCV DNN (opencv-python-headless, a dev dependency for this test), ExecuTorch in Python (executorch.runtime)
and C++ (g++ against the executorch wheel; on copies of the artifacts with .pte programs written in, until the
committed ones have them). The onnxruntime C API snippet is not
run anywhere: Debian has no onnxruntime C headers; its names and shapes are checked against the manifest instead.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from edge_helpers import ATOL, MARGIN, STRICT, build_cpp, gcc
from helpers import ALL_TASKS, ARTIFACTS, MULTILABEL_TASKS, ROOT, TASKS, WEB, node_missing, skip_or_fail

from edgeclf.report.card import model_card
from edgeclf.report.howto import example_row
from edgeclf.runtime import Classifier, Manifest
from edgeclf.runtime.formats import FORMATS

NUMBER = re.compile(r"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")
BIN = Path(sys.executable).parent


def snippets(task: str, root: Path = ARTIFACTS) -> dict[str, tuple[str, str]]:
    """heading -> (language, code) of every snippet in the generated card's "How to load it"."""
    m, _ = Manifest.read(root / task)
    metrics = json.loads((root / task / "metrics.json").read_text())
    card = model_card(m, metrics, [])
    howto = card[card.index("## How to load it"):]
    found = {}
    for section in howto.split("\n### ")[1:]:
        heading, body = section.split("\n", 1)
        lang, code = re.search(r"```(\w+)\n(.*?)```", body, re.S).groups()
        found[heading] = (lang, code)
    return found


def check_printed(stdout: str, task: str, root: Path = ARTIFACTS) -> float:
    """The last line holds the probabilities, the one before it the label (a multi-label card: every label's
    decision, `label=0|1` for each in order, checked where |p - threshold| exceeds the margin); returns the max
    |diff|."""
    clf = Classifier.load(root / task)
    row = [example_row(clf.manifest)]
    want = clf.predict_proba(row)[0].astype(np.float64)
    lines = stdout.strip().splitlines()
    got = np.array([float(v) for v in NUMBER.findall(lines[-1])])
    assert got.shape == want.shape, (lines[-1], want)
    assert np.abs(got - want).max() <= ATOL, (got, want)
    if clf.multilabel:
        pairs = [item.rsplit("=", 1) for item in lines[-2].split()]
        assert [k for k, _ in pairs] == list(clf.classes_) and all(v in ("0", "1") for _, v in pairs), lines
        decided = np.array([v == "1" for _, v in pairs])
        decisive = np.abs(want - clf.thresholds_) > MARGIN
        assert np.array_equal(decided[decisive], clf.predict(row)[0][decisive]), lines
    else:
        assert lines[-2].strip() == clf.predict(row)[0], lines
    return float(np.abs(got - want).max())


def run(cmd: list[str], cwd: Path = ROOT, **kw) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=300, **kw)
    assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def run_python(code: str, tmp_path: Path) -> str:
    (tmp_path / "snippet.py").write_text(code)
    return run([sys.executable, str(tmp_path / "snippet.py")])


def run_node(code: str, tmp_path: Path, cwd: Path = ROOT) -> str:
    reason = node_missing()
    if reason:
        skip_or_fail(reason, browser=True)
    # `import ... from "onnxruntime-node"` resolves from the snippet's folder: give it the repository's install
    (tmp_path / "node_modules").symlink_to(WEB / "node_modules", target_is_directory=True)
    (tmp_path / "predict.mjs").write_text(code)
    return run(["node", str(tmp_path / "predict.mjs")], cwd=cwd)


def run_c_header(code: str, task: str, tmp_path: Path) -> str:
    (tmp_path / "main.c").write_text(code)
    exe = gcc([tmp_path / "main.c"], tmp_path / "main", [ARTIFACTS / task], STRICT)
    return run([str(exe)])


def skip_without_format(task: str, heading: str) -> None:
    """A card leaves out the section of a format its manifest lacks (a skip); a section missing for a file the
    manifest lists is the card's failure."""
    fmt = {h: f.name for f in FORMATS for h, _ in f.cards}.get(heading)
    m, _ = Manifest.read(ARTIFACTS / task)
    listed = fmt is None or any(f.format == fmt for f in m.files)
    assert not listed, f"{task}'s card has no {heading!r} section in 'How to load it', but its manifest lists it"
    pytest.skip(f"{task}'s manifest lists no file for {heading}")


PYTHON = ("Python (numpy + onnxruntime only)", "TorchScript (torch.jit.load)", "torch.export (.pt2)")


@pytest.mark.parametrize("heading", [*PYTHON, "OpenCV DNN"])
@pytest.mark.parametrize("task", TASKS)
def test_python_snippets_run(task, heading, tmp_path):
    found = snippets(task)
    if heading not in found:
        skip_without_format(task, heading)
    if heading == "OpenCV DNN":
        try:
            import cv2  # noqa: F401
        except ImportError:
            skip_or_fail("opencv-python-headless is not installed (the dev extra has it)")
    lang, code = found[heading]
    assert lang == "python"
    print(task, heading, check_printed(run_python(code, tmp_path), task))


@pytest.mark.parametrize("task", ALL_TASKS)
def test_cli_snippet_runs(task, tmp_path):
    lang, code = snippets(task)["CLI"]
    assert lang == "sh"
    (tmp_path / "artifacts").symlink_to(ARTIFACTS, target_is_directory=True)  # it writes rows.csv where it runs
    out = run(["bash", "-eu", "-c", code], env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}, cwd=tmp_path)
    (row,) = list(csv.DictReader(io.StringIO(out)))
    clf = Classifier.load(ARTIFACTS / task)
    probs = " ".join(row[f"proba_{c}"] for c in clf.classes_)
    # a multi-label model: one 0/1 column named after each label, read as the other snippets' `label=0|1` line
    decided = " ".join(f"{c}={row[c]}" for c in clf.classes_) if clf.multilabel else row["label"]
    check_printed(f"{decided}\n{probs}\n", task)


@pytest.mark.parametrize("task", ALL_TASKS)
def test_node_snippet_runs(task, tmp_path):
    lang, code = snippets(task)["Node.js (onnxruntime-node)"]
    assert lang == "js"
    print(task, "node", check_printed(run_node(code, tmp_path), task))


@pytest.mark.parametrize("task", TASKS)
def test_c_header_snippet_runs(task, tmp_path):
    found = snippets(task)
    if "C header" not in found:
        skip_without_format(task, "C header")
    lang, code = found["C header"]
    assert lang == "c"
    print(task, "C header", check_printed(run_c_header(code, task, tmp_path), task))


@pytest.mark.parametrize("task", ALL_TASKS)
def test_browser_snippet_runs(task, page, server):
    """The page's own <script> block, run in a page of `edgeclf serve-web` (the <script src> loaded ort already)."""
    lang, html = snippets(task)["Browser (onnxruntime-web)"]
    assert lang == "html" and '<script src="/ort/ort.wasm.min.js"></script>' in html
    code = re.findall(r"<script>\n(.*?)</script>", html, re.S)[0]
    pg, errors = page
    pg.goto(f"{server}/?task={task}")
    pg.wait_for_function("() => window.ort !== undefined", timeout=60_000)
    pg.evaluate("() => { window.__logs = []; console.log = (...a) => window.__logs.push(a.join(' ')); }")
    pg.evaluate(code)
    pg.wait_for_function("() => window.__logs.length >= 2", timeout=60_000)
    print(task, "browser", check_printed("\n".join(pg.evaluate("() => window.__logs")), task))
    assert errors == []


@pytest.mark.parametrize("task", TASKS)
def test_c_api_snippet_names_the_manifest(task):
    """Not compilable here (no onnxruntime C headers): its file, names and shapes are the manifest's."""
    m, _ = Manifest.read(ARTIFACTS / task)
    lang, code = snippets(task)["onnxruntime C API"]
    e, f = m.onnx_files[0], len(m.features)
    assert lang == "c"
    for text in (f'"artifacts/{task}/{e.path}"', f'{{"{m.signature.input}"}}', f'{{"{m.signature.probabilities.name}"}}',
                 f"x[{e.batch_size} * {f}]", f"shape[2] = {{{e.batch_size}, {f}}}"):
        assert text in code, text


EXECUTORCH = ("ExecuTorch (Python, executorch.runtime)", "ExecuTorch (C++)")


def run_executorch(heading: str, code: str, root: Path, tmp_path: Path) -> str:
    """Run from the folder holding root (an `artifacts` folder: the committed one, or copies with .pte files)."""
    if heading == EXECUTORCH[0]:
        (tmp_path / "snippet.py").write_text(code)
        return run([sys.executable, str(tmp_path / "snippet.py")], cwd=root.parent)
    (tmp_path / "main.cpp").write_text(code)
    return run([str(build_cpp(tmp_path / "main.cpp", tmp_path / "main"))], cwd=root.parent)


# Each snippet exec'd as written, all tasks in one interpreter: importing executorch.runtime alone takes ~10 s.
EXEC_ALL = """
import contextlib, io, json, sys
out = {}
for task, code in json.loads(sys.stdin.read()).items():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, f"snippet_{task}.py", "exec"), {"__name__": "__main__"})
    out[task] = buf.getvalue()
print(json.dumps(out))
"""


@pytest.mark.slow
def test_executorch_python_snippets_run(pte_root):
    codes = {}
    for task in TASKS:
        lang, codes[task] = snippets(task, pte_root)[EXECUTORCH[0]]
        assert lang == "python"
    done = subprocess.run([sys.executable, "-c", EXEC_ALL], input=json.dumps(codes), capture_output=True, text=True,
                          cwd=pte_root.parent, timeout=300)
    assert done.returncode == 0, done.stderr
    for task, printed in json.loads(done.stdout.splitlines()[-1]).items():
        print(task, EXECUTORCH[0], check_printed(printed, task))


@pytest.mark.slow  # a g++ build per task
@pytest.mark.parametrize("task", TASKS)
def test_executorch_cpp_snippets_run(task, pte_root, tmp_path):
    lang, code = snippets(task, pte_root)[EXECUTORCH[1]]
    assert lang == "cpp"
    print(task, EXECUTORCH[1], check_printed(run_executorch(EXECUTORCH[1], code, pte_root, tmp_path), task))


@pytest.mark.slow
def test_a_wrong_executorch_snippet_fails(pte_root, tmp_path):
    m, _ = Manifest.read(pte_root / "iris")
    lo, pr = m.signature.logits.index, m.signature.probabilities.index
    for heading in EXECUTORCH:
        code = snippets("iris", pte_root)[heading][1]
        wrong = code.replace(f"p = out[{pr}][0]", f"p = out[{lo}][0]").replace(f"out->at({pr})", f"out->at({lo})")
        assert wrong != code
        with pytest.raises(AssertionError):  # the logits, not the probabilities
            check_printed(run_executorch(heading, wrong, pte_root, tmp_path), "iris")


# A multi-label card: every snippet prints every label's 0/1 (check_printed reads `label=0|1`).
ML_HEADINGS = ["Python (numpy + onnxruntime only)", "TorchScript (torch.jit.load)", "torch.export (.pt2)", "OpenCV DNN",
               "C header",
               pytest.param(EXECUTORCH[0], marks=pytest.mark.slow), pytest.param(EXECUTORCH[1], marks=pytest.mark.slow)]


@pytest.mark.parametrize("heading", ML_HEADINGS)
@pytest.mark.parametrize("task", MULTILABEL_TASKS)
def test_multilabel_snippets_print_every_label(task, heading, tmp_path):
    lang, code = snippets(task)[heading]
    if heading == "OpenCV DNN":
        try:
            import cv2  # noqa: F401
        except ImportError:
            skip_or_fail("opencv-python-headless is not installed (the dev extra has it)")
    if heading in EXECUTORCH:
        printed = run_executorch(heading, code, ARTIFACTS, tmp_path)
    elif lang == "c":
        printed = run_c_header(code, task, tmp_path)
    else:
        printed = run_python(code, tmp_path)
    print(task, heading, check_printed(printed, task))
    wrong = printed.replace("=1", "=0") if "=1" in printed else printed.replace("=0", "=1", 1)
    with pytest.raises(AssertionError):  # the check can fail: one decision flipped
        check_printed(wrong, task)


# A wrong snippet fails: the same runners and check on snippets with one mistake each.
@pytest.mark.parametrize("task", ["circles", "iris"])
def test_a_wrong_snippet_fails(task, tmp_path):
    found = snippets(task)
    m, _ = Manifest.read(ARTIFACTS / task)
    lo, pr = m.signature.logits.index, m.signature.probabilities.index
    torchscript = found["TorchScript (torch.jit.load)"][1].replace(f"p = out[{pr}][0]", f"p = out[{lo}][0]")
    printed = run_python(torchscript, tmp_path)  # the wrong snippet runs: only the check below may fail it
    with pytest.raises(AssertionError):  # the logits, not the probabilities
        check_printed(printed, task)
    name = m.signature.probabilities.name
    node = found["Node.js (onnxruntime-node)"][1].replace(f'out["{name}"]', f'out["{m.signature.logits.name}"]')
    assert node != found["Node.js (onnxruntime-node)"][1]
    printed = run_node(node, tmp_path)
    with pytest.raises(AssertionError):
        check_printed(printed, task)
    header = found["C header"][1].replace("_predict_proba(x, p);", "_predict_proba(x, p); p[0] += 1e-4f;")
    printed = run_c_header(header, task, tmp_path)
    with pytest.raises(AssertionError):
        check_printed(printed, task)


@pytest.mark.parametrize("task", MULTILABEL_TASKS)
def test_a_wrong_multilabel_snippet_fails(task, tmp_path):
    """A multi-label card's Node snippet that ignores the thresholds (every label on) runs and fails the check."""
    code = snippets(task)["Node.js (onnxruntime-node)"][1]
    wrong = code.replace("p[i] >= Math.fround(thresholds[i])", "p[i] >= 0")
    assert wrong != code
    with pytest.raises(AssertionError):
        check_printed(run_node(wrong, tmp_path), task)


@pytest.mark.slow  # conftest's category_root trains and exports a model (~30 s)
def test_category_model_node_snippet_runs(category_root, tmp_path):
    """A model with a category column: the card's example row gives it its first value's index (a mean of indices
    is no category), and the snippet prints the Classifier's answer."""
    code = snippets("shop", category_root)["Node.js (onnxruntime-node)"][1]
    print("shop", "node", check_printed(run_node(code, tmp_path, cwd=category_root.parent), "shop", category_root))


def test_card_versions_are_the_pinned_ones():
    """The snippets name the onnxruntime-node/-web version the project pins (web/package.json)."""
    from edgeclf.report.howto import ORT_NODE

    deps = json.loads((ROOT / "web" / "package.json").read_text())["dependencies"]
    assert deps["onnxruntime-node"] == deps["onnxruntime-web"] == ORT_NODE, deps


@pytest.fixture(scope="module")
def oip_server(tmp_path_factory):
    """`edgeclf serve` on every committed artifact (it only reads them), on a free port."""
    from test_serve import Server, _missing

    missing = _missing()
    if missing:
        skip_or_fail(f"{missing} is not installed: pip install 'edgeclf[serve,dev]'",
                     required=os.environ.get("CI") == "true")
    s = Server([ARTIFACTS / t for t in ALL_TASKS], tmp_path_factory.mktemp("oip"))
    yield f"127.0.0.1:{s.port}"
    assert s.stop() == 0


@pytest.mark.parametrize("heading", ["Server (curl)", "Server (tritonclient)"])
@pytest.mark.parametrize("task", ALL_TASKS)
def test_server_snippets_run(task, heading, oip_server, tmp_path):
    """As written, but for the server's address (a free port here, 127.0.0.1:8000 in the card)."""
    from edgeclf.report.howto import SERVER

    lang, code = snippets(task)[heading]
    assert SERVER in code
    code = code.replace(SERVER, oip_server)
    if lang == "sh":
        if shutil.which("curl") is None:
            skip_or_fail("curl is not installed")
        out = run(["bash", "-eu", "-o", "pipefail", "-c", code])
    else:
        out = run_python(code, tmp_path)
    print(task, heading, check_printed(out, task))


def test_a_wrong_server_snippet_fails(oip_server):
    """The same runner and check on the curl snippet printing the logits instead of the probabilities."""
    from edgeclf.report.howto import SERVER

    code = snippets("iris")["Server (curl)"][1].replace(SERVER, oip_server)
    wrong = code.replace('print(o["probabilities"])', 'print(o["logits"])')
    assert wrong != code
    with pytest.raises(AssertionError):
        check_printed(run(["bash", "-eu", "-o", "pipefail", "-c", wrong]), "iris")
