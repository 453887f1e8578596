"""A multi-label user table trains by the default recipe of a single-label one (train/search.py): the candidates,
early stopping on the validation rows the thresholds are chosen on, the lowest validation binary cross-entropy kept;
--lr and the like fix one setting instead. Its columns as a single-label table's: an id-like column left out with
the same warning, a text column left out with one line, and an empty cell's error without the --impute hint that
multi-label refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import assert_clean_error, run_cli
from test_multilabel_train import LABELS, _frame

from edgeclf.train.checkpoint import load_checkpoint
from edgeclf.train.multilabel import split
from edgeclf.train.settings import SPLIT_SEED
from edgeclf.train.tasks import CANDIDATES

FEATURES = ["f0", "f1", "f2", "f3"]


def _xy(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    y = np.stack([frame[k].astype(str).str.lower().isin(["1", "true", "yes"]) for k in LABELS], 1)
    return frame[FEATURES].to_numpy(np.float32), y.astype(np.float32)


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The default recipe on a 300-row table with an id column, a row counter and a text column beside the
    features (--epochs caps each candidate, as for one label)."""
    root = tmp_path_factory.mktemp("mlrecipe")
    frame = _frame(300)
    frame.insert(0, "row_id", np.arange(1, 301))  # a name like an id
    frame.insert(1, "n", np.arange(300) * 3 + 7)  # a row counter: integers increasing row by row
    frame["colour"] = np.where(frame["f0"] > 0, "red", "blue")
    frame.to_csv(root / "tags.csv", index=False)
    r = run_cli("train", "--data", root / "tags.csv", "--label", ",".join(LABELS), "--out", root / "art",
                "--epochs", "40", "--quiet")
    assert r.exit_code == 0, r.output
    return root / "art" / "tags", r.output


def test_the_search_runs_and_its_choice_is_recorded(searched: tuple[Path, str]) -> None:
    folder, _ = searched
    m = json.loads((folder / "metrics.json").read_text())
    found = m["search"]
    assert "binary cross-entropy" in found["by"] and len(found["candidates"]) == len(CANDIDATES)
    losses = [c["best_val_loss"] for c in found["candidates"]]
    assert found["chosen"] == int(np.argmin(losses))
    chosen = CANDIDATES[found["chosen"]]
    config = m["train_config"]
    assert (config["lr"], config["weight_decay"], config["batch_size"]) == (chosen.lr, chosen.weight_decay,
                                                                          chosen.batch_size)
    assert config["patience"] > 0 and config["epochs"] == 40
    t = load_checkpoint(folder)
    assert tuple(t.config.hidden) == chosen.hidden
    stop = m["early_stopping"]
    assert stop["validation_rows"] == m["rows"]["validation"] and len(m["history"]["val_loss"]) == stop["epochs_run"]
    # the rows early stopping watched are the threshold rows: the restored weights' BCE there is the best loss
    x, y = _xy(pd.read_csv(folder.parent.parent / "tags.csv"))
    x_val, y_val = split(x, y, SPLIT_SEED)["validation"]
    with torch.no_grad():
        bce = torch.nn.functional.binary_cross_entropy_with_logits(t.model(torch.from_numpy(x_val)),
                                                                   torch.from_numpy(y_val))
    assert float(bce) == pytest.approx(stop["best_val_loss"], abs=1e-5)
    assert min(losses) == stop["best_val_loss"]


def test_the_card_and_info_name_the_loss(searched: tuple[Path, str]) -> None:
    from edgeclf.cli.main import table_lines
    from edgeclf.report.card import _recipe

    m = json.loads((searched[0] / "metrics.json").read_text())
    card = _recipe(m)
    assert "Recipe search, chosen by lowest validation binary cross-entropy" in card
    assert f"the lowest validation binary cross-entropy {m['early_stopping']['best_val_loss']:.4f}" in card
    assert "log loss" not in card
    assert any(line.startswith("stopping    best validation binary cross-entropy") for line in table_lines(m))


def test_id_like_columns_left_out_with_one_warning(searched: tuple[Path, str]) -> None:
    folder, printed = searched
    assert load_checkpoint(folder).task.features == tuple(FEATURES)
    ids = [line for line in printed.splitlines() if "id-like columns left out of the features" in line]
    assert len(ids) == 1 and "'row_id' (named like an id)" in ids[0] and "'n' (integers increasing row by row)" in ids[0]
    text = [line for line in printed.splitlines() if "multi-label tables take no categories yet" in line]
    assert len(text) == 1 and "'colour'" in text[0]


def test_a_fixed_setting_does_not_search(tmp_path: Path) -> None:
    frame = _frame(200)
    frame.insert(0, "row_id", np.arange(200))
    frame.to_csv(tmp_path / "t.csv", index=False)
    r = run_cli("train", "--data", tmp_path / "t.csv", "--label", ",".join(LABELS), "--out", tmp_path / "art",
                "--epochs", "15", "--lr", "0.02", "--features", "row_id,f0,f1,f2", "--quiet")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "art" / "t" / "metrics.json").read_text())
    assert "search" not in m and m["train_config"]["lr"] == 0.02 and "early_stopping" in m
    assert "id-like" not in r.output  # named in --features: taken, no warning
    assert load_checkpoint(tmp_path / "art" / "t").task.features == ("row_id", "f0", "f1", "f2")


@pytest.mark.parametrize("mode", ["--no-stream", "--stream"])
def test_an_empty_cell_names_no_impute(tmp_path: Path, mode: str) -> None:
    frame = _frame(40)
    frame.loc[5, "f2"] = np.nan
    frame.to_csv(tmp_path / "t.csv", index=False)
    r = run_cli("train", "--data", tmp_path / "t.csv", "--label", ",".join(LABELS), "--out", tmp_path / "art",
                "--epochs", "2", "--quiet", mode)
    assert_clean_error(r, 1, "column 'f2' row 6: empty cell; expected a number in every row")
    assert "impute" not in r.output
