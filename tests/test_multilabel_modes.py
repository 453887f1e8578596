"""Multi-label tables through the one training path's other modes (issue 26): `--test FILE` (the metrics on the
given table), `--cv K` (fold means and spreads, folds stratified on each row's rarest label) and `--stream` (the file
read again every epoch, test and validation rows held out by hash within the same strata). The expected figures are
computed here from the checkpoint and the files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import assert_clean_error, run_cli
from test_multilabel_train import LABELS, _frame

from edgeclf.train.checkpoint import load_checkpoint

FEATURES = ["f0", "f1", "f2", "f3"]


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mlmodes")
    _frame(400).to_csv(root / "tags.csv", index=False)
    _frame(400).to_parquet(root / "tags.parquet", index=False)
    test = _frame(150, seed=9)
    test["gamma"] = "false"  # a label absent from every test row: scored, not refused
    test.to_csv(root / "test.csv", index=False)
    return root


def _train(root: Path, out: Path, *args: object) -> tuple[Path, str]:
    r = run_cli("train", "--data", root / "tags.csv", "--label", ",".join(LABELS), "--out", out, "--epochs", "25",
                "--quiet", *args)
    assert r.exit_code == 0, r.output
    return out / "tags", r.output


def _scores(folder: Path, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Subset accuracy, Hamming loss and micro-F1 of the checkpoint at its thresholds, by hand."""
    t = load_checkpoint(folder)
    with torch.no_grad():
        p = torch.sigmoid(t.model(torch.from_numpy(x))).numpy()
    pred, truth = p >= np.float32(t.task.thresholds), y > 0.5
    tp = float((pred & truth).sum())
    return {"subset_accuracy": float((pred == truth).all(1).mean()), "hamming_loss": float((pred != truth).mean()),
            "micro_f1": 2 * tp / float(pred.sum() + truth.sum())}


def _xy(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    y = np.stack([frame[k].astype(str).str.lower().isin(["1", "true", "yes"]) for k in LABELS], 1)
    return frame[FEATURES].to_numpy(np.float32), y.astype(np.float32)


def test_a_given_test_table(tables: Path, tmp_path: Path) -> None:
    folder, printed = _train(tables, tmp_path, "--test", tables / "test.csv")
    m = json.loads((folder / "metrics.json").read_text())
    test = pd.read_csv(tables / "test.csv")
    assert m["rows"]["test"] == 150 and m["rows"]["fit"] + m["rows"]["validation"] == 400
    want = _scores(folder, *_xy(test))
    for k, v in want.items():
        assert m["test"][k] == pytest.approx(v, abs=1e-6), k
    assert m["test"]["per_label"]["gamma"]["roc_auc"] is None and m["test"]["per_label"]["gamma"]["support"] == 0
    assert f"test (150 rows) subset accuracy {want['subset_accuracy']:.2%}" in printed
    assert all(f"tags:   {k}" in printed for k in LABELS)
    split = load_checkpoint(folder).task.split
    assert "given test table test.csv" in split


def test_cross_validation(tables: Path, tmp_path: Path) -> None:
    folder, printed = _train(tables, tmp_path, "--cv", "3")
    cv = json.loads((folder / "metrics.json").read_text())["cv"]
    assert cv["k"] == 3 and len(cv["folds"]) == 3 and "rarest" in cv["stratified"]
    for k in ("subset_accuracy", "hamming_loss", "micro_f1", "macro_f1"):
        values = [f[k] for f in cv["folds"]]
        assert cv[k]["mean"] == pytest.approx(np.mean(values), abs=1e-6)
        assert cv[k]["std"] == pytest.approx(np.std(values), abs=1e-6)
    assert set(cv["per_label_f1"]) == set(LABELS) and cv["macro_f1"]["mean"] > 0.6
    # the folds are three scorings, not one copied: they differ, and each holds the bounds a real scoring holds
    # (a wrong row has between 1 and L wrong cells: hamming <= 1 - subset accuracy <= L * hamming)
    assert len({json.dumps(f, sort_keys=True) for f in cv["folds"]}) == 3
    for f in cv["folds"]:
        assert f["hamming_loss"] <= 1 - f["subset_accuracy"] + 1e-9 <= len(LABELS) * f["hamming_loss"] + 2e-9
    assert f"3-fold CV subset accuracy {cv['subset_accuracy']['mean']:.4f}" in printed


def test_folds_are_stratified_on_the_rarest_label() -> None:
    from edgeclf.train.datasets import stratified_folds
    from edgeclf.train.multilabel import rarest_label

    rng = np.random.default_rng(3)
    y = (rng.random((500, 3)) < [0.5, 0.3, 0.04]).astype(np.float32)  # label 2 rare: 4%
    strata = rarest_label(y)
    rare = y[:, 2] > 0.5
    assert (strata[rare] == 2).all() and (strata[~y.any(1)] == 3).all()
    assert (strata[(y[:, 1] > 0.5) & ~rare] == 1).all()
    counts = [int(rare[b].sum()) for _, b in stratified_folds(strata, 5, seed=0)]
    assert max(counts) - min(counts) <= 1 and sum(counts) == rare.sum()


def test_default_split_is_stratified_on_the_rarest_label() -> None:
    """The in-memory split (no --test): each part holds its share of the rare label's positives (counted here from
    the parts' rows), every row is in exactly one part, and the same seed gives the same parts."""
    from edgeclf.train.multilabel import VALIDATION_SHARE, split

    rng = np.random.default_rng(5)
    y = (rng.random((1000, 3)) < [0.5, 0.3, 0.03]).astype(np.float32)
    x = np.arange(1000, dtype=np.float32)[:, None]  # the row number, to follow rows through the split
    parts = split(x, y, seed=0)
    rows = np.concatenate([p[0][:, 0] for p in parts.values()])
    assert sorted(rows.tolist()) == list(range(1000))
    rare = int(y[:, 2].sum())
    n_test = int(parts["test"][1][:, 2].sum())
    assert n_test == int(np.ceil(0.2 * rare))
    assert int(parts["validation"][1][:, 2].sum()) == int(np.ceil(VALIDATION_SHARE * (rare - n_test)))
    again = split(x, y, seed=0)
    assert all(np.array_equal(again[k][0], parts[k][0]) for k in parts)
    assert len(split(x, y, seed=0, test_share=0.0)["test"][1]) == 0


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_streamed(tables: Path, tmp_path: Path, suffix: str) -> None:
    """Held out by hash within each row's rarest-label stratum: every row once in test, validation or training; the
    rare label's test share is its share of the file; an epoch yields exactly the training rows."""
    from edgeclf.train.stream_labels import label_batches, scan_labels

    r = run_cli("train", "--data", tables / f"tags.{suffix}", "--label", ",".join(LABELS), "--out", tmp_path,
                "--epochs", "20", "--quiet", "--stream")
    assert r.exit_code == 0 and "non-numeric" not in r.output, r.output
    m = json.loads((tmp_path / "tags" / "metrics.json").read_text())
    s = m["stream"]
    assert s["rows"] == 400 and s["train_rows"] + s["test_rows"] + s["validation_rows"] == 400
    assert m["rows"] == {"fit": s["train_metrics_rows"], "validation": s["validation_rows"], "test": s["test_rows"]}
    scan = scan_labels(tables / f"tags.{suffix}", LABELS, None, seed=42)
    x, y = _xy(pd.read_csv(tables / "tags.csv"))
    rare = int(np.argmin(y.mean(0)))
    assert abs(scan.test[1][:, rare].sum() - np.ceil(0.2 * y[:, rare].sum())) <= 1
    assert scan.features == tuple(FEATURES) and len(scan.test[1]) == s["test_rows"]
    held = {tuple(r) for r in np.concatenate([scan.test[0], scan.validation[0]])}
    seen = [xb for xb, _ in label_batches(scan, 32, 0)]
    trained = np.concatenate(seen)
    assert len(trained) == scan.train_rows and not held & {tuple(r) for r in trained}
    assert {tuple(r) for r in trained} | held == {tuple(r) for r in x}
    assert m["test"]["subset_accuracy"] == pytest.approx(
        _scores(tmp_path / "tags", *scan.test)["subset_accuracy"], abs=1e-6)


@pytest.mark.parametrize("args, fragment", [
    (("--stream", "--cv", "3"), "cross-validation (cv=3) needs the table in memory"),
    (("--cv", "1"), "cross-validation folds k=1: expected 2 <= k <= 400"),
    (("--impute", "median"), "impute='median' is not made for multi-label tables"),
    (("--test", "MISSING"), "label column 'beta' not found"),
    (("--stream", "--test", "MISSING"), "label column 'beta' not found"),
])
def test_bad_modes_one_line_nothing_written(tables: Path, tmp_path: Path, args: tuple[str, ...],
                                            fragment: str) -> None:
    bad = tmp_path / "bad_test.csv"
    _frame(30, seed=4).drop(columns=["beta"]).to_csv(bad, index=False)
    args = tuple(str(bad) if a == "MISSING" else a for a in args)
    r = run_cli("train", "--data", tables / "tags.csv", "--label", ",".join(LABELS), "--out", tmp_path / "art",
                "--epochs", "2", "--quiet", *args)
    assert_clean_error(r, 1, fragment)
    assert not (tmp_path / "art" / "tags").exists()


def test_a_bad_label_value_in_a_streamed_file(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    df = _frame(60)
    df["beta"] = df["beta"].where(df.index != 41, "maybe")
    df.to_csv(src, index=False)
    r = run_cli("train", "--data", src, "--label", ",".join(LABELS), "--out", tmp_path / "art", "--epochs", "2",
                "--quiet", "--stream")
    assert_clean_error(r, 1, "label column 'beta' row 42: value 'maybe': expected 0/1, true/false or yes/no")
    assert not (tmp_path / "art" / "bad").exists()


def test_label_cells_read_as_text_take_what_numbers_take() -> None:
    """A streamed CSV's label columns are read as text: "1.0"/"0.0" are the numbers the in-memory reader accepts,
    any other number (2.0, nan) is still refused naming its row, shown as the number (as in memory), unquoted."""
    import pyarrow as pa

    from edgeclf.runtime.errors import InputError
    from edgeclf.tables.columns import RowNames, indicator_values

    ok = pa.table({"a": ["1.0", "0.0", " yes ", "FALSE", "1", "0e0"]})
    assert indicator_values(ok, "a", "t.csv", RowNames()).tolist() == [1, 0, 1, 0, 1, 0]
    for bad in ("2.0", "nan", "-1", "0.5"):
        with pytest.raises(InputError, match=f"row 2: value {re.escape(bad)}: expected 0/1"):
            indicator_values(pa.table({"a": ["1", bad]}), "a", "t.csv", RowNames())
    with pytest.raises(InputError, match="row 2: value 'maybe': expected 0/1"):  # text stays quoted
        indicator_values(pa.table({"a": ["1", "maybe"]}), "a", "t.csv", RowNames())
    for empty in (None, "", "  "):
        with pytest.raises(InputError, match="row 2: empty cell: expected 0/1"):
            indicator_values(pa.table({"a": ["1", empty]}), "a", "t.csv", RowNames())


@pytest.mark.parametrize("features, fragment", [
    ([], "the feature list is empty"),
    (["f0", "f0"], "duplicate column names ['f0']"),
    (["nope"], "feature column 'nope' not found"),
])
def test_a_named_feature_list_is_checked_as_for_one_label(features, fragment) -> None:
    """In memory as streamed (both through tables' one check of a named list): an empty list (it loaded a table
    of no features before), duplicates (accepted before) and a missing column are one line each."""
    from edgeclf.runtime.errors import InputError
    from edgeclf.train.multilabel import load_label_table

    with pytest.raises(InputError, match=re.escape(fragment)):
        load_label_table(_frame(40), LABELS, features)


@pytest.mark.parametrize("rows", [350, 450])
@pytest.mark.parametrize("labels", [LABELS, ["alpha"]], ids=["multilabel", "one-label"])
def test_a_file_that_changes_between_epochs_is_refused(tmp_path: Path, rows: int, labels: list[str]) -> None:
    """Streamed training re-reads the file each epoch (train/stream.py held_in, for one label and for label
    columns): a file that shrank or grew since the first read is one clear error, not rows silently trained on."""
    from edgeclf.runtime.errors import InputError
    from edgeclf.train.stream import scan, train_batches
    from edgeclf.train.stream_labels import label_batches, scan_labels

    path = tmp_path / "tags.csv"
    _frame(400).to_csv(path, index=False)
    if len(labels) > 1:
        s = scan_labels(path, labels, FEATURES, seed=42)
        epoch = lambda: label_batches(s, 32, 0)  # noqa: E731
    else:
        s = scan(path, labels[0], FEATURES, seed=42)
        epoch = lambda: train_batches(s, 32, 0)  # noqa: E731
    assert sum(len(yb) for _, yb in epoch()) == s.train_rows  # the unchanged file: an epoch of its training rows
    _frame(rows, seed=3).to_csv(path, index=False)
    with pytest.raises(InputError, match="the file changed while training"):
        sum(1 for _ in epoch())
