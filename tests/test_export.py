"""Export: committed artifacts verify, every format reloads and matches eager, the parity check can fail."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from conftest import ARTIFACTS, FORMATS, TASKS, assert_clean_error, run_cli, snapshot

from edgeclf.export.card import CARD, IMAGES
from edgeclf.export.graph import write_onnx
from edgeclf.export.parity import ATOL, OutputDiff, ParityResult, compare
from edgeclf.export.pipeline import check_file, check_set, export_artifact, load_eager, verify_artifact
from edgeclf.runtime.errors import ArtifactError, InputError, ParityError
from edgeclf.runtime.manifest import SCHEMA, FileEntry, Manifest, file_sha256
from edgeclf.train.tasks import get_task


def manifest_of(task: str) -> Manifest:
    return Manifest.read(ARTIFACTS / task)[0]


@pytest.fixture(scope="module")
def checks():
    """Per task: the eager model and its reference outputs on test set + grid."""
    out = {}
    for task in TASKS:
        model = load_eager(ARTIFACTS / task, task)[0]
        out[task] = (model, check_set(model, get_task(task).dataset().x_test, manifest_of(task).domain))
    return out


CASES = [(t, e) for t in TASKS for e in manifest_of(t).files]


@pytest.mark.parametrize("task,entry", CASES, ids=[f"{t}-{e.format}-b{e.batch_size}" for t, e in CASES])
def test_committed_file_matches_eager(task, entry, checks):
    result = check_file(ARTIFACTS / task / entry.path, entry, checks[task][1])
    assert result, str(result)
    assert result.rows == 200 + 201 * 201 or (task == "spirals" and result.rows == 60 + 201 * 201)
    assert entry.sha256 == file_sha256(ARTIFACTS / task / entry.path)
    assert entry.bytes == (ARTIFACTS / task / entry.path).stat().st_size


@pytest.mark.parametrize("task", TASKS)
def test_committed_manifest(task):
    m = manifest_of(task)
    spec = get_task(task)
    assert m.schema == SCHEMA and m.task == task and m.classes == spec.classes and m.features == spec.features
    assert {f.format for f in m.files} == set(FORMATS)
    assert [f.batch_size for f in m.onnx_files] == [1, 64, 1024, 16384]
    assert all(v["passed"] for v in m.parity["files"].values()) and set(m.parity["files"]) == {f.path for f in m.files}
    metrics = json.loads((ARTIFACTS / task / "metrics.json").read_text())
    assert m.metrics == {k: v for k, v in metrics.items() if k != "history"}
    assert set(m.versions) == {"edgeclf", "torch", "onnx", "onnxruntime"}
    # written and read by the same code: a round trip gives the same bytes
    assert m.to_json() == (ARTIFACTS / task / "manifest.json").read_bytes()


@pytest.mark.parametrize("task", TASKS)
def test_committed_onnx_is_static_checked_and_self_describing(task):
    m = manifest_of(task)
    for e in m.onnx_files:
        model = onnx.load(str(ARTIFACTS / task / e.path))
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        dims = lambda v: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]  # noqa: E731
        assert [(i.name, dims(i)) for i in model.graph.input] == [("input", [e.batch_size, 2])]
        cols = 1 if m.kind == "binary" else len(m.classes)
        assert [(o.name, dims(o)) for o in model.graph.output] == [
            ("logits", [e.batch_size, cols]), ("probabilities", [e.batch_size, len(m.classes)])]
        assert [o.version for o in model.opset_import if o.domain == ""] == [e.opset] == [20]
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["edgeclf.task"] == task and meta["edgeclf.schema"] == SCHEMA
        assert json.loads(meta["edgeclf.classes"]) == list(m.classes)
        assert json.loads(meta["edgeclf.features"]) == list(m.features)
        assert not (ARTIFACTS / task / (e.path + ".data")).exists()


@pytest.mark.parametrize("task", ["circles", "blobs"])
def test_onnx_reference_evaluator_agrees_with_onnxruntime(task):
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    path = str(ARTIFACTS / task / "model.b64.onnx")
    x = np.random.default_rng(0).uniform(-2, 2, (64, 2)).astype(np.float32)
    ref = ReferenceEvaluator(path).run(None, {"input": x})
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})
    for a, b in zip(got, ref):
        assert np.abs(a - b).max() <= ATOL


@pytest.mark.parametrize("task", TASKS)
def test_committed_artifacts_verify_clean(task):
    report = verify_artifact(ARTIFACTS / task)
    assert report and len(report.results) == 6


def test_perturbed_export_is_caught(tmp_path, checks):
    model, check = checks["circles"]
    bad = copy.deepcopy(model)  # the fixture's model stays the reference
    with torch.no_grad():
        bad.mlp[0].weight[0, 0] += 1e-3  # one weight nudged
    write_onnx(bad.eval(), 2, 64, 20, tmp_path / "bad.onnx", {})
    result = check_file(tmp_path / "bad.onnx", FileEntry("bad.onnx", "onnx", 64, "", 0, 20), check)
    assert not result and "FAIL" in str(result) and result.needed_atol > ATOL


def test_parity_result_policy():
    ref = (np.array([[1.0], [-2.0]], np.float32), np.array([[0.2, 0.8], [0.5, 0.5]], np.float32))
    same = compare("f", ref, ref)
    assert same and same.needed_atol == 0 and "PASS" in str(same)
    near = compare("f", (ref[0] + 9e-6, ref[1]), ref)
    assert near
    far = compare("f", (ref[0] + 2e-5, ref[1]), ref)
    assert not far and far.needed_atol == pytest.approx(2e-5, rel=1e-2)
    # a tie row may flip its label (margin 0 <= 1e-4); a decisive row may not
    tie_flip = compare("f", (ref[0], np.array([[0.2, 0.8], [0.499999, 0.500001]], np.float32)), ref)
    assert tie_flip and tie_flip.label_agreement == 0.5
    flip = compare("f", (ref[0], np.array([[0.8, 0.2], [0.5, 0.5]], np.float32)), ref)
    assert not flip and flip.label_mismatches == 1
    assert isinstance(flip.to_dict()["outputs"]["logits"]["max_abs"], float)


def test_export_refuses_on_parity_failure_and_keeps_folder(artifact_copy, monkeypatch):
    folder = artifact_copy("circles")
    before = snapshot(folder)
    import edgeclf.export.pipeline as pipeline

    def failing(*a, **k):
        return ParityResult("model.b1.onnx", 1, (OutputDiff("logits", 1.0, 1.0),), 0.0, 1)

    monkeypatch.setattr(pipeline, "check_file", failing)
    with pytest.raises(ParityError, match="FAIL model.b1.onnx"):
        export_artifact(folder)
    assert snapshot(folder) == before


def test_export_in_same_process_matches_fresh_process(tmp_path):
    """TorchScript mangles names by history; edgeclf resets it, so export order does not change bytes."""
    shutil.copytree(ARTIFACTS / "moons", tmp_path / "moons")
    shutil.copytree(ARTIFACTS / "blobs", tmp_path / "blobs")
    export_artifact(tmp_path / "moons")
    export_artifact(tmp_path / "blobs")
    committed = {k: v for k, v in snapshot(ARTIFACTS / "blobs").items() if k not in (*IMAGES, CARD)}
    assert snapshot(tmp_path / "blobs") == committed  # (pictures are dropped by a re-export: stale)


def test_export_batch_sizes_and_opset(tmp_path, artifact_copy):
    folder = artifact_copy("blobs")
    res = run_cli("export", "blobs", "--out", folder.parent, "--batch-size", "8", "--batch-size", "3", "--opset", "18")
    assert res.exit_code == 0, res.output
    m = Manifest.read(folder)[0]
    assert [(f.batch_size, f.opset) for f in m.onnx_files] == [(3, 18), (8, 18)]
    assert not (folder / "model.b1.onnx").exists()  # the folder is the new version, not a merge


@pytest.mark.parametrize("args,code,fragments", [
    (["export", "squares"], 2, ["'squares'"]),
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
    import edgeclf.train.storage as storage

    monkeypatch.setattr(storage, "_can_write", lambda folder: False)  # as for a read-only folder, even as root
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
    assert res.output.count("PASS") == 6 and "model.pt2" in res.output
