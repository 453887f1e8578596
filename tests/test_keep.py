"""An export keeps what the folder held (export/keep.py): the card, the pictures, the edge formats, the user's own
files; or it says what it dropped and why."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from helpers import ARTIFACTS

from edgeclf.export.keep import DroppedWarning
from edgeclf.export.pipeline import export_artifact
from edgeclf.report.build import write_card
from edgeclf.runtime import Manifest

SIZES = (1, 64)
PLOTTED = {"MODEL_CARD.md", "boundary.png", "calibration.png", "training.png"}  # what `edgeclf plot` drew


def listing(folder):
    return {p.name for p in folder.iterdir()}


def card_lists_its_files(folder):
    """The card was rewritten from the new manifest: every file's sha256 prefix (the .ort bytes change on each
    conversion, so a stale card would show the old ones)."""
    card = (folder / "MODEL_CARD.md").read_text()
    m, _ = Manifest.read(folder)
    return all(f"`{f.sha256[:16]}…`" in card for f in m.files)


@pytest.fixture
def plotted(tmp_path):
    """The committed circles folder (plotted: card and pictures) with a note and a folder of the user's."""
    folder = tmp_path / "circles"
    shutil.copytree(ARTIFACTS / "circles", folder)
    (folder / "notes.txt").write_text("mine\n")
    (folder / "extra").mkdir()
    (folder / "extra" / "data.csv").write_text("a,b\n1,2\n")
    return folder


@pytest.mark.slow  # ~25 s on 2 busy cores: two exports with .ort and int8, one in a fresh process
def test_export_with_every_edge_format_then_reexport_keeps_the_folder(plotted):
    assert PLOTTED <= listing(plotted)
    pictures = {p: (plotted / p).read_bytes() for p in PLOTTED - {"MODEL_CARD.md"}}
    export_artifact(plotted, SIZES, task="circles", edge=("c", "ort", "int8"), c_prefix="circ", card=write_card,
                    allow_lossy_int8=True)  # circles' int8 files are larger than its float ones: allowed once
    edge_files = {f"model.b{b}.{s}" for b in SIZES for s in ("ort", "int8.onnx")} | {"model.h",
                                                                                      "required_operators.config"}
    edge_files |= {"model.pte", "model.portable.pte"}  # the committed folder had the .pte programs: made again
    first = listing(plotted)
    assert first == PLOTTED | edge_files | {"notes.txt", "extra", "checkpoint.pt", "metrics.json", "manifest.json",
                                            "model.b1.onnx", "model.b64.onnx", "model.torchscript.pt", "model.pt2"}
    assert card_lists_its_files(plotted)

    # a plain re-export in a fresh process, as a user types it: nothing dropped, nothing said about it
    cmd = [sys.executable, "-m", "edgeclf.cli", "export", "circles", "--out", str(plotted.parent),
           "--batch-size", "1", "--batch-size", "64"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr and "Traceback" not in done.stderr
    assert listing(plotted) == first
    m, _ = Manifest.read(plotted)
    assert {f.format for f in m.files} >= {"c", "ort", "onnx-int8", "pte"}
    assert next(f for f in m.files if f.format == "c").details["prefix"] == "circ"  # the folder's prefix kept
    assert all("lossy_allowed" in f.details for f in m.files_of("onnx-int8"))  # allowed once, stays allowed
    assert "circ_predict" in (plotted / "model.h").read_text()
    assert card_lists_its_files(plotted)
    assert all((plotted / p).read_bytes() == data for p, data in pictures.items())  # same weights: same pictures
    assert (plotted / "notes.txt").read_text() == "mine\n" and (plotted / "extra" / "data.csv").is_file()


def test_what_an_export_drops_it_names_with_the_reason(plotted):
    with pytest.warns(DroppedWarning) as seen:
        export_artifact(plotted, (1,), task="circles")  # no card writer: the card cannot be rewritten
    said = [str(w.message) for w in seen]
    assert any(s.startswith("model.b1024.onnx, model.b16384.onnx, model.b4096.onnx, model.b64.onnx dropped from ")
               and "--batch-size 1 --batch-size 64 --batch-size 1024" in s for s in said), said
    assert any(s.startswith("MODEL_CARD.md dropped") and "edgeclf plot" in s for s in said), said
    assert listing(plotted) >= {"model.b1.onnx", "model.h", "boundary.png", "notes.txt", "extra"}
    assert not listing(plotted) & {"MODEL_CARD.md", "model.b64.onnx"}

    # the pictures of other weights are dropped, not shown beside files they do not describe
    manifest = json.loads((plotted / "manifest.json").read_text())
    manifest["origin"]["state_dict_sha256"] = "0" * 64
    (plotted / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(DroppedWarning, match=r"boundary.png, calibration.png, training.png dropped .*other weights"):
        export_artifact(plotted, (1,), task="circles")
    assert not listing(plotted) & PLOTTED


BLOCK_EXECUTORCH = """
import sys
class _NoExecutorch:  # this Python as one without the executorch extra
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "executorch":
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _NoExecutorch())
from edgeclf.cli import console
sys.argv = ["edgeclf", *sys.argv[1:]]
console()
"""


def test_a_format_whose_extra_is_missing_is_dropped_with_the_extra_named(tmp_path):
    """The committed folders list .pte programs; re-exported where ExecuTorch is not installed, the export still
    succeeds, drops the two programs and says which extra makes them again (it does not fail, or keep stale files
    the manifest no longer lists)."""
    folder = tmp_path / "circles"
    shutil.copytree(ARTIFACTS / "circles", folder)
    assert {"model.pte", "model.portable.pte"} <= listing(folder)
    cmd = [sys.executable, "-c", BLOCK_EXECUTORCH, "export", "circles", "--out", str(tmp_path),
           "--batch-size", "1", "--batch-size", "64"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    dropped = [ln for ln in done.stderr.splitlines() if "model.portable.pte, model.pte dropped" in ln]
    assert len(dropped) == 1 and "pip install 'edgeclf[executorch]'" in dropped[0], done.stderr
    assert not {"model.pte", "model.portable.pte"} & listing(folder)
    m, _ = Manifest.read(folder)
    assert not m.files_of("pte") and m.files_of("c")  # the other edge format is made again
