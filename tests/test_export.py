"""Export: committed artifacts verify, every format reloads and matches eager, the parity check can fail."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from helpers import ARTIFACTS, TASKS, TORCH_FORMATS, assert_clean_error, run_cli, snapshot

from edgeclf.artifact.store import CARD, json_bytes
from edgeclf.export.checks import check_file, check_set
from edgeclf.export.describe import graph_docs
from edgeclf.export.formats import write_onnx
from edgeclf.export.parity import LOGITS_ATOL, PROBA_ATOL, compare
from edgeclf.export.pipeline import export_artifact, verify_artifact
from edgeclf.export.registry import is_checked
from edgeclf.export.subject import from_trained
from edgeclf.report.build import PICTURES
from edgeclf.runtime.contract import n_logits
from edgeclf.runtime.errors import ArtifactError, InputError, ParityError
from edgeclf.runtime.manifest import SCHEMA, FileEntry, Manifest, file_sha256
from edgeclf.train.checkpoint import load_checkpoint


def manifest_of(task: str) -> Manifest:
    return Manifest.read(ARTIFACTS / task)[0]


@pytest.fixture(scope="module")
def checks():
    """Per task: what is exported (model, check rows) and its check set, from the committed checkpoint."""
    out = {}
    for task in TASKS:
        s = from_trained(load_checkpoint(ARTIFACTS / task, task))
        out[task] = (s, check_set(s.model, s.check_rows, manifest_of(task).domain, s.check_what))
    return out


CASES = [(t, e) for t in TASKS for e in manifest_of(t).files if e.format in TORCH_FORMATS]


@pytest.mark.parametrize("task,entry", CASES, ids=[f"{t}-{e.format}-b{e.batch_size}" for t, e in CASES])
def test_committed_file_matches_eager(task, entry, checks):
    result = check_file(ARTIFACTS / task / entry.path, entry, checks[task][1])
    assert result, str(result)
    checked = len(checks[task][1].x[checks[task][1].rows(entry.batch_size)])  # batch 1: a subset (checks.py)
    assert result.rows == manifest_of(task).parity.files[entry.path]["rows"] == checked
    assert entry.sha256 == file_sha256(ARTIFACTS / task / entry.path)
    assert entry.bytes == (ARTIFACTS / task / entry.path).stat().st_size


@pytest.mark.parametrize("task", TASKS)
def test_committed_manifest(task):
    m = manifest_of(task)
    t = load_checkpoint(ARTIFACTS / task, task).task
    assert m.schema == SCHEMA and m.task == task and m.classes == t.classes and m.feature_names == t.features
    assert TORCH_FORMATS == tuple(f for f in TORCH_FORMATS if m.files_of(f))
    assert [f.batch_size for f in m.onnx_files] == [1, 64, 1024, 4096, 16384]
    checked = {f.path for f in m.files if is_checked(f.format)}  # the C header is checked by compiling it
    assert all(v["passed"] for v in m.parity.files.values()) and set(m.parity.files) == checked
    metrics = json.loads((ARTIFACTS / task / "metrics.json").read_text())
    assert m.metrics == {k: v for k, v in metrics.items() if k != "history"}
    assert set(m.versions) == {"edgeclf", "torch", "onnx", "onnxruntime"}
    # written and read by the same code: a round trip gives the same bytes
    assert json_bytes(m.to_dict()) == (ARTIFACTS / task / "manifest.json").read_bytes()


def test_manifest_holds_no_machine_measured_float():
    """Parity figures depend on the CPU that measured them: the committed manifest keeps verdicts only."""
    for task in TASKS:
        for figures in manifest_of(task).parity.files.values():
            assert set(figures) == {"rows", "passed"}


@pytest.mark.parametrize("task", TASKS)
def test_committed_onnx_is_static_checked_and_self_describing(task):
    m = manifest_of(task)
    for e in m.onnx_files:
        model = onnx.load(str(ARTIFACTS / task / e.path))
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        dims = lambda v: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]  # noqa: E731
        assert [(i.name, dims(i)) for i in model.graph.input] == [("input", [e.batch_size, len(m.features)])]
        cols = n_logits(len(m.classes))
        assert [(o.name, dims(o)) for o in model.graph.output] == [
            ("logits", [e.batch_size, cols]), ("probabilities", [e.batch_size, len(m.classes)])]
        assert [o.version for o in model.opset_import if o.domain == ""] == [e.opset] == [20]
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["edgeclf.task"] == task and meta["edgeclf.schema"] == SCHEMA
        assert json.loads(meta["edgeclf.classes"]) == list(m.classes)
        assert json.loads(meta["edgeclf.features"]) == list(m.feature_names)
        assert not (ARTIFACTS / task / (e.path + ".data")).exists()
        # readable without the manifest: documented graph, input and outputs, edgeclf's version, a model version
        assert model.producer_name == "edgeclf" and model.producer_version == m.versions["edgeclf"]
        assert model.model_version == int(m.origin.state_dict_sha256[:12], 16)
        assert "pad" in model.graph.doc_string and all(v.doc_string for v in [*model.graph.input, *model.graph.output])
        if m.kind == "binary":  # the one logit's meaning
            assert f"log-odds of class {m.classes[1]!r}" in model.graph.output[0].doc_string


@pytest.mark.parametrize("task", ["circles", "blobs"])
def test_onnx_reference_evaluator_agrees_with_onnxruntime(task):
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    path = str(ARTIFACTS / task / "model.b64.onnx")
    x = np.random.default_rng(0).uniform(-2, 2, (64, 2)).astype(np.float32)
    ref = ReferenceEvaluator(path).run(None, {"input": x})
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})
    assert compare(task, tuple(got), tuple(ref))


@pytest.mark.parametrize("task", TASKS)
def test_committed_artifacts_verify_clean(task):
    report = verify_artifact(ARTIFACTS / task)
    assert report and len(report.results) == len([f for f in report.manifest.files if f.format in (*TORCH_FORMATS, "pte")])


@pytest.mark.parametrize("task", ["circles", "spirals"])
def test_perturbed_export_is_caught(tmp_path, checks, task):
    subject, check = checks[task]
    bad = copy.deepcopy(subject.model)  # the fixture's model stays the reference
    with torch.no_grad():
        bad.net[0].weight[0, 0] += 1e-3  # one weight nudged
    write_onnx(bad.eval(), subject.n_features, 64, 20, tmp_path / "bad.onnx", {}, graph_docs(subject))
    result = check_file(tmp_path / "bad.onnx", FileEntry("bad.onnx", "onnx", 64, "", 0, 20), check)
    assert not result and "FAIL" in str(result) and result.output("logits").excess > 1


def test_parity_result_policy():
    ref = (np.array([[1.0], [-200.0]], np.float32), np.array([[0.2, 0.8], [0.5, 0.5]], np.float32))
    same = compare("f", ref, ref)
    assert same and same.output("logits").needed_atol == 0 and "PASS" in str(same)
    near = compare("f", (ref[0] + 9e-6, ref[1]), ref)
    assert near
    far = compare("f", (ref[0] + np.array([[2e-5], [0.0]], np.float32), ref[1]), ref)
    assert not far and far.output("logits").needed_atol == pytest.approx(2e-5 - 1e-5, rel=1e-2)
    assert far.output("logits").worst_row == 0
    # the relative term: 1.5e-3 at |z| = 200 is inside 1e-5 + 1e-5 * 200 = 2.01e-3; 2.5e-3 is not
    assert compare("f", (ref[0] - np.array([[0.0], [1.5e-3]], np.float32), ref[1]), ref)
    assert not compare("f", (ref[0] - np.array([[0.0], [2.5e-3]], np.float32), ref[1]), ref)
    # the rounding term: eager's own float32 error E widens the logit bound by 2E, never the probability bound
    assert compare("f", (ref[0] + np.array([[2e-5], [0.0]], np.float32), ref[1]), ref, rounding=1e-5)
    assert not compare("f", (ref[0], ref[1] + np.float32(2 * PROBA_ATOL)), ref, rounding=1.0)
    assert LOGITS_ATOL == PROBA_ATOL == 1e-5
    # a tie row may flip its label (margin 0 <= 1e-4); a decisive row may not
    tie_flip = compare("f", (ref[0], np.array([[0.2, 0.8], [0.499999, 0.500001]], np.float32)), ref)
    assert tie_flip and tie_flip.label_agreement == 0.5
    flip = compare("f", (ref[0], np.array([[0.8, 0.2], [0.5, 0.5]], np.float32)), ref)
    assert not flip and flip.label_mismatches == 1
    assert isinstance(flip.to_dict()["outputs"]["logits"]["max_abs"], float)


def test_export_refuses_a_perturbed_checkpoint_and_keeps_folder(artifact_copy):
    """A real parity miss, end to end: the exporter traces the checkpoint, so corrupt what it is checked against
    (the eager reference) instead, by making torch.onnx see other weights than eager does."""
    folder = artifact_copy("circles")
    before = snapshot(folder)
    import edgeclf.export.pipeline as pipeline

    real = pipeline.write_onnx

    def nudged(model, *a, **k):
        bad = copy.deepcopy(model)  # the arrangement export.layout made of the module (its first layer is w0)
        with torch.no_grad():
            bad.w0[0, 0] += 1e-3
        real(bad, *a, **k)

    pipeline.write_onnx = nudged
    try:
        with pytest.raises(ParityError, match=r"FAIL model\.b1\.onnx.*logits max_abs=.*worst row \d+"):
            export_artifact(folder)
    finally:
        pipeline.write_onnx = real
    assert snapshot(folder) == before


def test_export_is_reproducible_in_one_process(tmp_path):
    """TorchScript mangles names by history; edgeclf resets it, so export order does not change bytes. The
    reference is a fresh export in this process of the same checkpoint (never the committed bytes, which another
    CPU may have made)."""
    for name in ("moons", "blobs"):
        shutil.copytree(ARTIFACTS / name, tmp_path / "a" / name)
    shutil.copytree(ARTIFACTS / "blobs", tmp_path / "b" / "blobs")
    export_artifact(tmp_path / "a" / "moons")
    export_artifact(tmp_path / "a" / "blobs")
    export_artifact(tmp_path / "b" / "blobs")
    assert snapshot(tmp_path / "a" / "blobs") == snapshot(tmp_path / "b" / "blobs")
    names = set(snapshot(tmp_path / "a" / "blobs"))
    assert CARD not in names  # no card writer passed: the card (it lists the files) is dropped with a warning
    assert {"boundary.png", "calibration.png"} <= names <= set(snapshot(ARTIFACTS / "blobs")) | set(PICTURES)


def test_export_batch_sizes_and_opset(tmp_path, artifact_copy):
    folder = artifact_copy("blobs")
    res = run_cli("export", "blobs", "--out", folder.parent, "--batch-size", "8", "--batch-size", "3", "--opset", "18")
    assert res.exit_code == 0, res.output
    m = Manifest.read(folder)[0]
    assert [(f.batch_size, f.opset) for f in m.onnx_files] == [(3, 18), (8, 18)]
    assert not (folder / "model.b1.onnx").exists()  # the folder is the new version, not a merge


@pytest.mark.parametrize("args,code,fragments", [
    (["export", "squares"], 1, ["no checkpoint", "squares"]),
    (["export", "circles", "--batch-size", "0"], 2, ["--batch-size", "0"]),
    (["export", "circles", "--batch-size", "x"], 2, ["'x'"]),
    (["export", "circles", "--opset", "7"], 2, ["--opset", "7"]),
], ids=["unknown-task", "batch-0", "batch-text", "opset-7"])
def test_export_bad_args(args, code, fragments, circles_copy):
    before = snapshot(circles_copy / "circles")
    assert_clean_error(run_cli(*args, "--out", circles_copy), code, *fragments)
    assert snapshot(circles_copy / "circles") == before


def test_export_missing_checkpoint(tmp_path):
    assert_clean_error(run_cli("export", "moons", "--out", tmp_path), 1, "no checkpoint", "edgeclf train moons")


def test_export_corrupt_checkpoint(artifact_copy):
    folder = artifact_copy("circles")
    (folder / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a zip")
    before = snapshot(folder)
    assert_clean_error(run_cli("export", "circles", "--out", folder.parent), 1, "not a readable edgeclf checkpoint")
    assert snapshot(folder) == before


def test_export_checkpoint_of_another_task(artifact_copy):
    folder = artifact_copy("circles")
    shutil.copy(ARTIFACTS / "blobs" / "checkpoint.pt", folder / "checkpoint.pt")
    before = snapshot(folder)
    assert_clean_error(run_cli("export", "circles", "--out", folder.parent), 1, "task 'blobs', expected 'circles'")
    assert snapshot(folder) == before


def test_export_unwritable_folder(artifact_copy, monkeypatch):
    folder = artifact_copy("circles")
    before = snapshot(folder)
    import edgeclf.artifact.store as store

    monkeypatch.setattr(store, "_can_write", lambda folder: False)  # as for a read-only folder, even as root
    assert_clean_error(run_cli("export", "circles", "--out", folder.parent), 1, "not writable")
    assert snapshot(folder) == before


def test_validate_args_library():
    from edgeclf.export.pipeline import validate_export_args

    assert validate_export_args([64, 1, 64], 20) == (1, 64)
    with pytest.raises(InputError, match="batch size 0"):
        validate_export_args([0], 20)
    with pytest.raises(InputError, match="opset 99"):
        validate_export_args([1], 99)


def test_verify_detects_tampering(artifact_copy):
    folder = artifact_copy("moons")
    data = bytearray((folder / "model.b64.onnx").read_bytes())
    data[-10] ^= 0xFF
    (folder / "model.b64.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="model.b64.onnx: sha256"):
        verify_artifact(folder)
    assert_clean_error(run_cli("verify", folder), 1, "model.b64.onnx", "re-export")


def test_verify_cli_table():
    res = run_cli("verify", ARTIFACTS / "spirals")
    assert res.exit_code == 0, res.output
    n_checked = len([e for e in manifest_of("spirals").files if is_checked(e.format)])  # ONNX, TorchScript, .pt2, .pte
    assert res.output.count("PASS") == n_checked and "model.pt2" in res.output and "of bound" in res.output
