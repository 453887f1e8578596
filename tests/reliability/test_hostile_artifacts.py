"""Hostile or broken artifacts: each refused at load, before any prediction runs, with a clear ArtifactError.

Where the damage comes with a *matching* sha256 in the manifest (an attacker who rewrote both), the later
checks must still refuse it: ONNX parse, graph signature, model metadata, path containment.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import ARTIFACTS, assert_clean_error, run_cli

from edgeclf.runtime import ArtifactError, Classifier, plan_chunks
from edgeclf.runtime.manifest import file_sha256
from edgeclf.train.checkpoint import load_checkpoint


def rehash(folder: Path, name: str, **changes) -> None:
    """Make the manifest agree with folder/name's current bytes (as an attacker would)."""
    m = json.loads((folder / "manifest.json").read_text())
    for f in m["files"]:
        if f["path"] == name:
            f["sha256"] = file_sha256(folder / name)
            f["bytes"] = (folder / name).stat().st_size
            f.update(changes)
    (folder / "manifest.json").write_text(json.dumps(m))


def edit_manifest(folder: Path, fn) -> None:
    m = json.loads((folder / "manifest.json").read_text())
    fn(m)
    (folder / "manifest.json").write_text(json.dumps(m))


@pytest.fixture
def art(tmp_path) -> Path:
    folder = tmp_path / "circles"
    shutil.copytree(ARTIFACTS / "circles", folder)
    return folder


def damage_truncated(f: Path) -> None:
    f.write_bytes(f.read_bytes()[:300])


def damage_garbage(f: Path) -> None:
    f.write_bytes(os.urandom(2048))


def damage_zero(f: Path) -> None:
    f.write_bytes(b"")


@pytest.mark.parametrize("damage", [damage_truncated, damage_garbage, damage_zero], ids=["truncated", "garbage", "zero"])
@pytest.mark.parametrize("rehashed", [False, True], ids=["hash-stale", "hash-matching"])
def test_broken_onnx(art, damage, rehashed):
    damage(art / "model.b64.onnx")
    if rehashed:
        rehash(art, "model.b64.onnx")
    with pytest.raises(ArtifactError, match="model.b64.onnx") as err:
        Classifier.load(art)
    assert ("not a loadable ONNX model" in str(err.value)) if rehashed else ("sha256" in str(err.value))


def test_file_swapped_for_another_tasks(art):
    shutil.copy(ARTIFACTS / "moons" / "model.b64.onnx", art / "model.b64.onnx")  # same signature, other model
    with pytest.raises(ArtifactError, match="sha256"):
        Classifier.load(art)
    rehash(art, "model.b64.onnx")
    with pytest.raises(ArtifactError, match="'edgeclf.task': 'moons'"):
        Classifier.load(art)


def test_file_swapped_for_another_batch_size(art):
    shutil.copy(art / "model.b1.onnx", art / "model.b64.onnx")
    rehash(art, "model.b64.onnx")
    with pytest.raises(ArtifactError, match="graph signature"):
        Classifier.load(art)


@pytest.mark.parametrize("edit,fragment", [
    (lambda m: m.update(schema="edgeclf.manifest/99"), "unknown schema 'edgeclf.manifest/99'"),
    (lambda m: m.update(schema="edgeclf.manifest/1"), "older edgeclf; re-export"),
    (lambda m: m.pop("features"), "missing required key 'features'"),
    (lambda m: m.pop("files"), "missing required key 'files'"),
    (lambda m: m["files"][0].pop("sha256"), "files[0]: missing required key 'sha256'"),
    (lambda m: m["files"][0].update(bytes="12"), "files[0].bytes: '12' has the wrong type"),
    (lambda m: m["signature"]["outputs"].pop("probabilities"), "signature.outputs: missing required key 'probabilities'"),
    (lambda m: m["features"][0].pop("name"), "features[0]: missing required key 'name'"),
    (lambda m: m.update(classes=["a", "a"]), "has duplicates"),
    (lambda m: m["domain"].update(low=[0.0]), "domain has 1/2 bounds"),
    (lambda m: m["files"][0].update(format="tflite"), "unknown format 'tflite'"),
    (lambda m: m["files"][0].update(batch_size=0), "batch_size 0"),
    (lambda m: m.update(kind="multiclass"), "kind 'multiclass' with 2 classes"),
    (lambda m: m["signature"].update(dtype="float64"), "float32"),
    (lambda m: m["files"][0].update(path="../../etc/passwd"), "'../../etc/passwd'"),
    (lambda m: m["files"][0].update(path="/etc/passwd"), "'/etc/passwd'"),
    (lambda m: m["signature"]["outputs"]["probabilities"].update(columns=3), "probability columns"),
    (lambda m: m["signature"]["outputs"]["logits"].update(name="scores"), "disagrees with the manifest"),
    (lambda m: m["signature"].update(input="x"), "disagrees with the manifest"),
], ids=["schema", "old-schema", "no-features", "no-files", "no-sha", "bytes-type", "no-probabilities",
        "feature-name", "dup-classes", "domain", "format", "batch-0", "kind", "dtype", "dotdot", "absolute",
        "shape-columns", "output-name", "input-name"])
def test_bad_manifest(art, edit, fragment):
    edit_manifest(art, edit)
    with pytest.raises(ArtifactError) as err:
        Classifier.load(art)
    assert fragment in str(err.value), str(err.value)
    use = run_cli("predict", art, "-", input="x1,x2\n0,0\n") if "disagrees" in fragment else run_cli("info", art)
    assert_clean_error(use, 1)


def test_manifest_not_json(art):
    (art / "manifest.json").write_bytes(b"\x00\xff{")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Classifier.load(art)
    (art / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="expected a JSON object"):
        Classifier.load(art)


def test_symlink_out_of_folder(art, tmp_path):
    outside = tmp_path / "outside.onnx"
    shutil.copy(art / "model.b64.onnx", outside)
    (art / "model.b64.onnx").unlink()
    (art / "model.b64.onnx").symlink_to(outside)  # same bytes, same hash: only containment can refuse it
    with pytest.raises(ArtifactError, match="outside the artifact folder"):
        Classifier.load(art)


def test_external_data_pointing_outside(art, tmp_path):
    model = onnx.load(str(art / "model.b64.onnx"))
    onnx.save_model(model, str(art / "model.b64.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    (art / "weights.bin").rename(tmp_path / "secret.bin")  # the weights now live outside the folder...
    proto = onnx.load(str(art / "model.b64.onnx"), load_external_data=False)
    for t in proto.graph.initializer:  # ...and the graph points there (onnx.save refuses to write this)
        for kv in t.external_data:
            if kv.key == "location":
                kv.value = "../secret.bin"
    (art / "model.b64.onnx").write_bytes(proto.SerializeToString())
    rehash(art, "model.b64.onnx")
    with pytest.raises(ArtifactError, match="model.b64.onnx is not a loadable ONNX model"):
        Classifier.load(art)


LADDER = ("model.b1.onnx", "model.b64.onnx", "model.b1024.onnx", "model.b4096.onnx", "model.b16384.onnx")


def damage_other_rung(f: Path) -> None:
    """Another rung's file (a valid graph of this very model, wrong batch size)."""
    other = "model.b64.onnx" if f.name == "model.b1.onnx" else "model.b1.onnx"
    shutil.copy(f.parent / other, f)


@pytest.mark.parametrize("damage", [damage_truncated, damage_other_rung], ids=["truncated", "other-rung"])
@pytest.mark.parametrize("bad", LADDER)
def test_refused_at_load_wherever_in_the_ladder(art, bad, damage):
    """A bad file at any rung, even one only big inputs reach, fails load() itself, hash rewritten or not:
    no Classifier exists, not even one serving the good rungs, so no prediction can reach the bad file."""
    x = np.random.default_rng(0).uniform(-1.2, 1.2, (16384 + 4096 + 1024 + 64 + 1, 2)).astype(np.float32)  # (N, 2)
    ladder = (1, 64, 1024, 4096, 16384)
    assert {b for _, _, b in plan_chunks(len(x), ladder)} == set(ladder)  # every rung runs
    want = Classifier.load(art).predict_proba(x)  # the intact ladder, real sessions
    original = (art / bad).read_bytes()
    damage(art / bad)
    for rewrite_hash in (False, True):
        if rewrite_hash:
            rehash(art, bad)
        with pytest.raises(ArtifactError, match=re.escape(bad)):
            Classifier.load(art)
    (art / bad).write_bytes(original)  # the refusal was the damage's doing: undone, the same predictions return
    rehash(art, bad)
    assert np.array_equal(Classifier.load(art).predict_proba(x), want)


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('EDGECLF_PWNED', '/tmp/edgeclf-pwned')}",))


def test_malicious_checkpoint_pickle_never_executes(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EDGECLF_PWNED", str(marker))
    folder = tmp_path / "circles"
    folder.mkdir()
    import torch

    with open(folder / "checkpoint.pt", "wb") as fh:
        torch.save({"format": "edgeclf.checkpoint/2", "payload": Exploit()}, fh)
    with pytest.raises(ArtifactError, match="not a readable edgeclf checkpoint"):
        load_checkpoint(folder)
    assert not marker.exists()
    # a raw pickle (not a torch zip) is refused the same way
    (folder / "checkpoint.pt").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(ArtifactError):
        load_checkpoint(folder)
    assert not marker.exists()
    assert_clean_error(run_cli("export", "circles", "--out", tmp_path), 1, "not a readable edgeclf checkpoint")
    assert not marker.exists()


UNPICKLERS = {"pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "torch", "onnx"}


def banned_in(source: str) -> list[str]:
    """What the runtime must not do, read from the syntax tree: any import of a module that unpickles (or of
    torch/onnx: `import torch`, `from torch import load`, `import onnx.checker`), eval/exec/__import__ calls,
    and np.load(..., allow_pickle=True)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in UNPICKLERS]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [node.module] if node.module.split(".")[0] in UNPICKLERS else []
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            found += [f"{name}()"] if name in ("eval", "exec", "__import__", "import_module") else []
            found += ["allow_pickle=True" for k in node.keywords
                      if k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)]
    return found


def test_runtime_never_unpickles():
    """The runtime's source imports no pickle, torch or onnx (in any import form), calls no eval/exec and no
    np.load(allow_pickle=True)."""
    for path in sorted((Path(__file__).parents[2] / "runtime").glob("*.py")):
        assert banned_in(path.read_text()) == [], path.name


def test_the_runtime_source_check_can_fail():
    for src in ("from torch import load", "import onnx.checker", "import pickle as p", "from pickle import loads",
                "np.load(f, allow_pickle=True)", "eval('1')", "from torch.serialization import load"):
        assert banned_in(src), src
    assert banned_in("import onnxruntime as ort\nfrom numpy import load\nnp.load(f, allow_pickle=False)") == []


def test_good_artifact_still_loads(art):
    assert Classifier.load(art).predict(np.zeros((1, 2))).shape == (1,)
