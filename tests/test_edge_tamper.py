"""A .ort or int8 ONNX file whose bytes changed after export is refused by its hash: `Classifier.load(...,
format="ort")` / `precision="int8"` raise ArtifactError naming the file and the sha256 mismatch, and
`edgeclf verify` says so in one line (exit 1, no traceback). The committed artifacts hold neither format, so a
copy of circles is exported with both (test_runtime.py covers tampered float32 ONNX files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import ARTIFACTS, assert_clean_error, run_cli

from edgeclf.runtime import ArtifactError, Classifier, Manifest

LOADS = {"ort": {"format": "ort"}, "onnx-int8": {"precision": "int8"}}


@pytest.fixture(scope="module")
def edge_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of artifacts/circles re-exported with --format ort --format int8 at one batch size (module-wide:
    an export with its parity checks takes ~40 s here)."""
    root = tmp_path_factory.mktemp("edge")
    shutil.copytree(ARTIFACTS / "circles", root / "circles")
    res = run_cli("export", "circles", "--out", root, "--batch-size", "64", "--format", "ort", "--format", "int8",
                  "--allow-lossy-int8")  # circles is too small for int8 to pay: its file is larger
    assert res.exit_code == 0, res.output
    return root / "circles"


def tampered_copy(edge_export: Path, tmp_path: Path, fmt: str) -> tuple[Path, str]:
    folder = tmp_path / "circles"
    shutil.copytree(edge_export, folder)
    entry = Manifest.read(folder)[0].files_of(fmt)[0]
    f = folder / entry.path
    data = f.read_bytes()
    k = len(data) // 2
    f.write_bytes(data[:k] + bytes([data[k] ^ 0x10]) + data[k + 1:])  # same size: only the hash can tell
    return folder, entry.path


@pytest.mark.parametrize("fmt", LOADS)
def test_untampered_edge_files_load(edge_export, fmt):
    """The control: the same folder, untouched, loads in that format and answers like the float32 files."""
    clf = Classifier.load(edge_export, **LOADS[fmt])
    assert clf.manifest.files_of(fmt), fmt
    x = np.array([[0.0, 0.1], [1.0, 0.0], [-0.7, -0.7]], np.float32)
    assert list(clf.predict(x)) == list(Classifier.load(edge_export).predict(x))


@pytest.mark.parametrize("fmt", LOADS)
def test_tampered_edge_file_refused(edge_export, tmp_path, fmt):
    folder, name = tampered_copy(edge_export, tmp_path, fmt)
    with pytest.raises(ArtifactError, match=rf"{name}: sha256 .* does not match the manifest's"):
        Classifier.load(folder, **LOADS[fmt])
    Classifier.load(folder)  # the float32 ONNX files beside it still load
    assert_clean_error(run_cli("verify", folder), 1, f"{name}: sha256", "does not match the manifest's")
    assert len(run_cli("verify", folder).output.strip().splitlines()) == 1
