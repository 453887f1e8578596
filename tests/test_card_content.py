"""What the model card says: a brought-in model's card and picture, the parity table's every file, the targets and
outputs as they are for this model, and no message naming a hidden staging folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from helpers import ARTIFACTS, run_cli
from torch import nn

from edgeclf.export.own_model import export_model
from edgeclf.report.card import _target, model_card
from edgeclf.runtime import Manifest


@pytest.fixture(scope="module")
def brought_in(tmp_path_factory):
    """A 3-class module of 5 features brought by the user, exported (two batch sizes) and plotted."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    out = tmp_path_factory.mktemp("mine")
    export_model(net, out, features=[f"f{i}" for i in range(5)], classes=["a", "b", "c"], check_data=x, name="mine",
                 batch_sizes=(1, 64))
    res = run_cli("plot", out / "mine")
    assert res.exit_code == 0, res.output
    return out / "mine", res.output


def test_a_brought_in_model_gets_its_card_and_picture(brought_in):
    folder, output = brought_in
    assert {"check_data.png", "MODEL_CARD.md"} <= {p.name for p in folder.iterdir()}
    assert ".new-" not in output
    card = (folder / "MODEL_CARD.md").read_text()
    assert "![check_data.png](check_data.png)" in card
    assert "3-class model outputs one logit per class" in card and "Binary" not in card and "binary model" not in card
    assert "target" not in card.split("## Calibration")[0]  # no target was ever set for it
    m, _ = Manifest.read(folder)
    assert all(f"`{f.path}`" in card.split("## Files")[0] for f in m.files)  # every file in the parity table


def test_the_committed_cards_parity_table_lists_the_c_header():
    m, _ = Manifest.read(ARTIFACTS / "circles")
    card = model_card(m, {}, [])
    table = card.split("## Parity with eager PyTorch")[1].split("## Files")[0]
    assert "| `model.h` | - | not run at export (C)" in table
    assert "This binary model outputs one logit, the log-odds of `inner`" in card


@pytest.mark.parametrize("metrics,said", [
    ({}, "; no accuracy target was set for this data"),
    ({"target_accuracy": 0.0, "target_met": True}, "; no accuracy target was set for this data"),
    ({"target_accuracy": 0.97, "target_met": True}, "; target 97.00% met"),
    ({"target": "5-fold CV accuracy >= the baseline's - 1%", "target_met": False},
     "; target (5-fold CV accuracy >= the baseline's - 1%) **missed**"),
])
def test_the_target_line_says_what_was_set(metrics, said):
    assert _target(metrics) == said


def test_advice_names_the_folder_and_the_option_that_finds_it(tmp_path, monkeypatch):
    shutil.copytree(ARTIFACTS / "circles", tmp_path / "arts" / "half")
    monkeypatch.chdir(tmp_path)
    res = run_cli("export", "half")  # trained into arts/, exported without --out
    assert res.exit_code == 1 and "pass --out arts" in res.output, res.output
    (tmp_path / "arts" / "half" / "checkpoint.pt").unlink()
    res = run_cli("plot", tmp_path / "arts" / "half")
    assert res.exit_code == 1 and ".new-" not in res.output and "arts/half/checkpoint.pt" in res.output, res.output
