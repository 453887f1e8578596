"""ExecuTorch .pte programs (edgeclf export --format pte): parity through ExecuTorch's own runtime, the C++ app of
examples/cpp built with g++ against the installed executorch wheel, their errors, the export paths and the bytes.

Every committed task: both programs through executorch.runtime against eager PyTorch (the policy, export/parity.py),
and through executorch.runtime and the C++ app against the Python Classifier (probabilities within 1e-5, labels).
Without executorch or g++ these tests skip, and fail under CI=true.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from edge_helpers import ATOL, build_cpp, csv_rows, margin, rows_of
from helpers import ARTIFACTS, BLOCKER, MULTILABEL_TASKS, ROOT, TASKS, assert_clean_error, python, run_cli, snapshot

from edgeclf.runtime import Classifier, Manifest
from edgeclf.runtime.errors import ArtifactError, InputError

pytestmark = pytest.mark.slow  # the shared fixture lowers 16 programs and imports executorch (~10 s alone)


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/cpp/predict, built once per session."""
    return build_cpp(ROOT / "examples" / "cpp" / "predict.cpp", tmp_path_factory.mktemp("cpp") / "predict")


def run_app(app: Path, program: Path, rows: np.ndarray) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(app), str(program)], input=",".join(f"f{i}" for i in range(rows.shape[1])) + "\n" +
                          csv_rows(rows), capture_output=True, text=True, timeout=300)


def policy_against_eager(folder: Path, entry, x: np.ndarray):
    """The export pipeline's own check of one program on rows x."""
    from edgeclf.export.checks import CheckSet, check_file
    from edgeclf.export.subject import from_trained
    from edgeclf.train.checkpoint import load_checkpoint

    s = from_trained(load_checkpoint(folder))
    return check_file(folder / entry.path, entry, CheckSet(s.model, x, "test rows + box"))


def same_answers(proba: np.ndarray, ref: np.ndarray) -> float:
    """Probabilities within 1e-5 and labels equal where the reference's margin is decisive; returns max |diff|."""
    assert proba.shape == ref.shape
    diff = float(np.abs(proba.astype(np.float64) - ref).max())
    assert diff <= ATOL, diff
    decisive = margin(ref) > 1e-4
    assert (proba.argmax(1) == ref.argmax(1))[decisive].all()
    return diff


@pytest.mark.parametrize("task", TASKS)
def test_programs_match_eager_and_the_classifier(task, pte_root, app):
    from edgeclf.export import pte
    from edgeclf.export.parity import run_chunked

    m, folder = Manifest.read(pte_root / task)
    x = rows_of(task)
    clf = Classifier.load(ARTIFACTS / task)
    ref = clf.predict_proba(x)
    for backend in (pte.XNNPACK, pte.PORTABLE):
        e = pte.entry_of(m, backend)
        assert e is not None and e.batch_size == pte.FILES[backend][1] and e.details["backend"] == backend
        assert e.details["executorch"] == "1.5.1" and e.details["probabilities_index"] == 1
        result = policy_against_eager(folder, e, x)
        assert result, str(result)
        logits, proba = run_chunked(pte.runner(folder / e.path), x, e.batch_size)
        done = run_app(app, folder / e.path, x)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        cpp = np.loadtxt(done.stdout.splitlines(), delimiter=",", ndmin=2)
        print(f"{task} {e.path}: eager logits {result.output('logits').max_abs:.1e} probabilities "
              f"{result.output('probabilities').max_abs:.1e}; Classifier probabilities runtime "
              f"{same_answers(proba, ref):.1e} C++ {same_answers(cpp, ref):.1e}")
        assert np.abs(cpp - proba).max() <= 1e-7  # %.9g text of the same kernels' floats


@pytest.mark.parametrize("task", MULTILABEL_TASKS)
def test_the_cpp_app_on_a_multilabel_program(task, app, tmp_path):
    """The committed multi-label programs through examples/cpp/predict: per row L probabilities (the same floats
    as executorch.runtime's, the Classifier's within 1e-5) then L 0/1 decisions, the thresholds read from the
    manifest beside the program (the Classifier's, outside the margin). Without a manifest: probabilities only."""
    from edgeclf.export import pte
    from edgeclf.export.parity import MARGIN, run_chunked
    from edgeclf.train.checkpoint import load_checkpoint

    folder = ARTIFACTS / task
    m = Manifest.read(folder)[0]
    clf, n = Classifier.load(folder), len(m.classes)
    x = load_checkpoint(folder).data.x_test[:300]
    want = clf.predict_proba(x)
    decisive = np.abs(want - clf.thresholds_) > MARGIN
    for backend in (pte.XNNPACK, pte.PORTABLE):
        e = pte.entry_of(m, backend)
        done = run_app(app, folder / e.path, x)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        out = np.loadtxt(done.stdout.splitlines(), delimiter=",", ndmin=2)  # (N, 2L)
        proba, decided = out[:, :n], out[:, n:]
        assert np.abs(proba - run_chunked(pte.runner(folder / e.path), x, e.batch_size)[1]).max() <= 1e-7
        assert np.abs(proba - want).max() <= ATOL
        assert set(np.unique(decided)) <= {0.0, 1.0}
        assert (decided.astype(bool) == clf.predict(x))[decisive].all() and decided.any()
    bare = tmp_path / "model.pte"  # a program alone: nothing tells it the thresholds
    bare.write_bytes((folder / "model.pte").read_bytes())
    alone = np.loadtxt(run_app(app, bare, x[:5]).stdout.splitlines(), delimiter=",", ndmin=2)
    assert alone.shape == (5, n)


def test_a_perturbed_program_fails_the_check(pte_root, tmp_path):
    """The check can fail: a program lowered from weights 1e-3 off misses the policy against the real model."""
    import torch

    from edgeclf.export import pte
    from edgeclf.export.checks import CheckSet, check_file
    from edgeclf.export.subject import from_trained
    from edgeclf.train.checkpoint import load_checkpoint

    s = from_trained(load_checkpoint(ARTIFACTS / "circles"))
    bad = copy.deepcopy(s.model)
    with torch.no_grad():
        next(bad.parameters()).add_(1e-3)
    entries = pte.write_programs(tmp_path, bad, s.n_features)
    checks = CheckSet(s.model, rows_of("circles"), "test rows + box")
    assert not any(check_file(tmp_path / e.path, e, checks) for e in entries)


def test_the_cpp_app_refuses_a_tampered_program(pte_root, app, tmp_path):
    """A truncated file and one with a wrong identifier: exit 1, one line naming the file and the cause."""
    from edgeclf.export import pte

    src = pte_root / "circles" / "model.portable.pte"
    data = src.read_bytes()
    cases = {"truncated.pte": (data[: len(data) // 2], "File size is too small"),
             "identifier.pte": (data[:4] + b"XX12" + data[8:], "Program identifier")}
    for name, (content, cause) in cases.items():
        (tmp_path / name).write_bytes(content)
        done = run_app(app, tmp_path / name, np.zeros((1, 2), np.float32))
        assert done.returncode == 1 and done.stdout == ""
        assert len(done.stderr.splitlines()) == 1 and str(tmp_path / name) in done.stderr and cause in done.stderr
        with pytest.raises(ArtifactError, match=name):
            pte.runner(tmp_path / name)
    done = run_app(app, src, np.zeros((1, 3), np.float32))  # a row of 3 for a 2-feature program
    assert done.returncode == 1 and done.stderr.startswith("error: line 2: expected 2 comma-separated"), done.stderr


def test_cli_export_verify_and_a_tampered_file(circles_copy):
    """`edgeclf export --format pte` lists both programs (hash, size, batch, backend, version, output index) and
    their parity; `verify` re-runs it; a flipped byte is refused by its sha256."""
    root = circles_copy
    res = run_cli("export", "circles", "--out", root, "--batch-size", "64", "--format", "pte")
    assert res.exit_code == 0, res.output
    assert "PASS model.pte" in res.output and "PASS model.portable.pte" in res.output
    m, folder = Manifest.read(root / "circles")
    for e in m.files_of("pte"):
        data = (folder / e.path).read_bytes()
        assert e.sha256 == hashlib.sha256(data).hexdigest() and e.bytes == len(data)
        assert set(e.details) >= {"backend", "executorch", "logits_index", "probabilities_index"}
        assert m.parity.files[e.path]["passed"]
    res = run_cli("verify", root / "circles")
    assert res.exit_code == 0 and "model.portable.pte" in res.output, res.output
    f = folder / "model.pte"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x10
    f.write_bytes(bytes(data))
    assert_clean_error(run_cli("verify", root / "circles"), 1, "model.pte", "sha256")


def test_a_brought_in_model_and_an_operator_executorch_lacks(tmp_path):
    """export_model(..., edge=["pte"]) proves a user's module too; one ExecuTorch has no kernel for is a one-line
    InputError naming the operator."""
    import torch
    from torch import nn

    from edgeclf.export.own_model import export_model

    class Sorted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(torch.sort(x, dim=1).values)

    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    kw = dict(features=["a", "b", "c", "d"], classes=["x", "y", "z"], check_data=x, batch_sizes=(1,))
    torch.manual_seed(0)
    manifest, results = export_model(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), tmp_path, name="mlp",
                                     edge=["pte"], **kw)
    assert {r.file for r in results} >= {"model.pte", "model.portable.pte"} and all(results)
    with pytest.raises(InputError, match="cannot take operator 'aten::sort.values'") as err:
        export_model(Sorted(), tmp_path, name="sorted", edge=["pte"], **kw)
    assert "\n" not in str(err.value) and not (tmp_path / "sorted").exists()


def test_without_executorch_the_cli_names_the_extra(tmp_path):
    """`--format pte` where executorch cannot be imported: one line naming the extra, exit 1, nothing written."""
    shutil.copytree(ARTIFACTS / "circles", tmp_path / "circles")
    before = snapshot(tmp_path / "circles")
    code = BLOCKER.replace('HEAVY = {"torch", "sklearn", "onnx", "onnxscript", "matplotlib", "pandas", "scipy", '
                           '"pyarrow", "dask"}', 'HEAVY = {"executorch"}')
    assert 'HEAVY = {"executorch"}' in code
    code += ("import sys\nfrom edgeclf.cli.main import console\n"
             f"sys.argv = ['edgeclf', 'export', 'circles', '--out', {str(tmp_path)!r}, '--format', 'pte']\nconsole()\n")
    done = python("-c", code)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "Error: this command needs the executorch extra (executorch is missing): pip install 'edgeclf[executorch]'"]
    assert snapshot(tmp_path / "circles") == before


def test_bytes_are_reproducible_under_the_other_cpu_stand_ins(pte_root, tmp_path):
    """Lowering again, in a fresh process with torch's and MKL's other-CPU arithmetic, gives the same bytes."""
    script = ("import sys\nfrom pathlib import Path\nfrom edgeclf.export import pte\n"
              "from edgeclf.export.subject import from_trained\nfrom edgeclf.train.checkpoint import load_checkpoint\n"
              "for task in sys.argv[2:]:\n"
              "    s = from_trained(load_checkpoint(Path(sys.argv[1]) / task))\n"
              "    (Path(sys.argv[1]) / task).mkdir(exist_ok=True)\n"
              "    pte.write_programs(Path(sys.argv[1]) / task, s.model, s.n_features)\n")
    tasks = ["circles"]
    for t in tasks:
        shutil.copytree(ARTIFACTS / t, tmp_path / t)
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "EDGECLF_PORTABLE": "0"}
    done = python("-c", script, str(tmp_path), *tasks, env=env)
    assert done.returncode == 0, done.stderr
    for t in tasks:
        for name in ("model.pte", "model.portable.pte"):
            assert (tmp_path / t / name).read_bytes() == (pte_root / t / name).read_bytes(), (t, name)
