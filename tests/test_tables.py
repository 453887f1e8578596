"""Bring your own data, end to end: a user's table trains, exports, verifies, predicts, plots and benches like a
built-in task; its bad inputs are one-line errors with nothing written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import assert_clean_error, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeclf.export.pipeline import export_artifact, verify_artifact
from edgeclf.export.subject import from_trained
from edgeclf.runtime import Classifier
from edgeclf.runtime.errors import EdgeclfError
from edgeclf.train.api import train_data
from edgeclf.train.checkpoint import load_checkpoint


def five_feature_table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Three classes separated by two of five features, on scales from 1e-3 to 1e3 (standardisation matters)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    signal = centres[y] + rng.normal(0, 0.6, (n, 2))
    return pd.DataFrame({
        "id": np.arange(n),  # numeric, but given --features it is left out
        "temp_k": 300 + 100 * signal[:, 0], "noise": rng.normal(0, 1e-3, n), "pressure": 1e-2 * signal[:, 1],
        "constant_ish": rng.normal(5, 1, n), "flow": rng.normal(0, 1e3, n),
        "grade": np.array(["alpha", "beta", "gamma"])[y],
    })


FEATURES = "temp_k,noise,pressure,constant_ish,flow"


@pytest.fixture(scope="module")
def trained_table(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    frame = five_feature_table()
    frame.to_parquet(root / "plant.parquet")
    res = run_cli("train", "--data", root / "plant.parquet", "--label", "grade", "--features", FEATURES,
                  "--out", root / "art", "--quiet", "--epochs", "150")
    assert res.exit_code == 0, res.output
    return root, frame


@pytest.mark.slow
def test_five_features_end_to_end(trained_table, tmp_path):
    root, frame = trained_table
    folder = root / "art" / "plant"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.95 and metrics["cv"]["k"] == 5 and "baseline" in metrics
    res = run_cli("export", "plant", "--out", root / "art", "--format", "c")
    assert res.exit_code == 0, res.output
    assert run_cli("verify", folder).exit_code == 0
    # predict matches columns by name: another order, extra columns, as a user's export of the same table would
    shuffled = frame[["flow", "grade", "pressure", "id", "temp_k", "constant_ish", "noise"]]
    shuffled.to_csv(tmp_path / "rows.csv", index=False)
    res = run_cli("predict", folder, tmp_path / "rows.csv")
    assert res.exit_code == 0, res.output
    labels = [ln.split(",")[0] for ln in res.stdout.strip().splitlines()[1:]]
    clf = Classifier.load(folder)
    assert labels == list(clf.predict(frame))
    assert (np.array(labels) == frame["grade"].to_numpy()).mean() >= 0.95
    m = clf.manifest
    assert [f.name for f in m.features] == FEATURES.split(",")
    t = frame["temp_k"].astype(np.float32)  # the values training saw
    assert t.min() <= m.features[0].min < m.features[0].max <= t.max()  # the train split's range
    assert abs(m.features[0].mean - t.mean()) < t.std() / 5
    assert run_cli("plot", folder).exit_code == 0
    assert (folder / "confusion.png").is_file() and not (folder / "boundary.png").exists()
    res = run_cli("bench", folder, "--rows", "1,100", "--threads", "1", "--no-cold")
    assert res.exit_code == 0, res.output
    res = run_cli("info", folder)
    assert "temp_k" in res.output and "standardised inputs" in res.output


def test_standardisation_is_inside_the_graph(trained_table):
    """Raw feature values go in: the ONNX graph subtracts the train mean first (the division by the train std is
    folded into the first layer's weights, export/layout.py); the batch-1 file is row-major, the others may be
    transposed first."""
    import onnx

    root, frame = trained_table
    folder = root / "art" / "plant"
    if not (folder / "manifest.json").exists():
        export_artifact(folder)
    ops = [n.op_type for n in onnx.load(str(folder / "model.b1.onnx")).graph.node]
    assert ops[:2] == ["Sub", "Gemm"] and not any(op.startswith("ai.onnx.ml") for op in ops), ops
    ops = [n.op_type for n in onnx.load(str(folder / "model.b64.onnx")).graph.node]
    assert [op for op in ops if op != "Transpose"][:2] == ["Sub", "Gemm"], ops
    clf = Classifier.load(folder)  # and raw values in give the trained model's answers
    x = frame[list(clf.features)].to_numpy()[:5]
    with torch.inference_mode():
        want = from_trained(load_checkpoint(folder, "plant")).model(torch.from_numpy(x.astype(np.float32)))[1].numpy()
    assert np.allclose(clf.predict_proba(x), want, rtol=0, atol=1e-5)


def test_out_of_range_rows_are_reported(trained_table, tmp_path):
    root, frame = trained_table
    folder = root / "art" / "plant"
    if not (folder / "manifest.json").exists():
        export_artifact(folder)
    clf = Classifier.load(folder)
    rows = frame[~clf.out_of_range(frame)].head(5).copy()  # five rows inside the range
    rows.loc[rows.index[2], "flow"] = 1e9
    rows.to_csv(tmp_path / "r.csv", index=False)
    res = run_cli("predict", folder, tmp_path / "r.csv")
    assert res.exit_code == 0, res.output
    assert "1 row(s) outside the training range" in res.stderr
    assert list(clf.out_of_range(rows)) == [False, False, True, False, False]


def write(tmp_path, frame: pd.DataFrame, kind: str = "csv"):
    path = tmp_path / f"t.{kind}"
    frame.to_csv(path, index=False) if kind == "csv" else frame.to_parquet(path)
    return path


@pytest.mark.parametrize("make,args,fragments", [
    (lambda p: p / "missing.csv", ["--label", "y"], ["missing.csv"]),
    (lambda p: write(p, pd.DataFrame({"a": np.arange(20.0), "y": [0, 1] * 10})), ["--label", "z"], ["'z'"]),
    (lambda p: write(p, pd.DataFrame({"a": np.arange(20.0), "y": [0] * 20})), ["--label", "y"], ["class"]),
    (lambda p: write(p, pd.DataFrame({"a": np.arange(5.0), "y": [0, 1, 0, 1, 0]})), ["--label", "y"], ["rows"]),
    (lambda p: write(p, pd.DataFrame({"a": ["x"] * 20, "y": [0, 1] * 10})), ["--label", "y", "--features", "a"],
     ["'a'", "'x'"]),
], ids=["missing-file", "no-label", "one-class", "few-rows", "non-numeric"])
def test_train_data_bad_input(tmp_path, make, args, fragments):
    res = run_cli("train", "--data", make(tmp_path), *args, "--out", tmp_path / "out", "--quiet")
    assert_clean_error(res, 1, *fragments)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_constant_feature_warns_and_trains(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(0, 1, 60), "flat": np.full(60, 7.0), "y": ["p", "q"] * 30})
    res = run_cli("train", "--data", write(tmp_path, frame), "--label", "y", "--out", tmp_path / "out", "--quiet",
                  "--epochs", "5", "--cv", "0")
    assert res.exit_code == 0, res.output
    assert "warning: feature 'flat' is constant in the training split" in res.stderr
    assert (tmp_path / "out" / "t" / "checkpoint.pt").is_file()


def test_train_usage_errors(tmp_path):
    assert_clean_error(run_cli("train", "--out", tmp_path, "--quiet"), 2, "TASK", "--data")
    assert_clean_error(run_cli("train", "--data", tmp_path / "x.csv", "--out", tmp_path, "--quiet"), 2, "--label")


names = st.text(alphabet=st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=6)


@st.composite
def small_tables(draw):
    cols = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    n = draw(st.integers(0, 40))
    frame = {c: draw(st.lists(st.one_of(st.floats(-1e3, 1e3), st.none()), min_size=n, max_size=n)) for c in cols}
    frame["label"] = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    return pd.DataFrame(frame)


@st.composite
def valid_small_tables(draw):
    """A table that must train: 20-30 rows, 1-3 finite features, two or three classes of 5 rows or more."""
    n = draw(st.integers(20, 30))
    k = draw(st.integers(2, 3))
    order = draw(st.permutations(range(n)))
    frame = {f"f{j}": draw(st.lists(st.floats(-1e3, 1e3, allow_subnormal=False), min_size=n, max_size=n))
             for j in range(draw(st.integers(1, 3)))}
    frame["label"] = [["a", "b", "c"][order[i] % k] for i in range(n)]
    return pd.DataFrame(frame)


@pytest.mark.slow
def test_random_tables_train_and_export_or_fail_cleanly(tmp_path_factory):
    """Garbage tables fail in one line; valid ones must train, export, verify and give the eager model's answers.
    One valid example: it exports every format and verifies them (a minute of this test's time on 2 cores)."""
    outcome = {"exported": 0, "refused": 0}

    def run(frame, valid):
        out = tmp_path_factory.mktemp("h")
        try:
            train_data(frame, "label", out, name="h", epochs=2, cv=0)
            manifest, results = export_artifact(out / "h", batch_sizes=(1,))
        except EdgeclfError as e:
            assert "\n" not in str(e) and str(e) and not valid, str(e)
            outcome["refused"] += 1
            return
        assert results and verify_artifact(out / "h")
        for r in results:
            assert r.output("probabilities").max_abs <= 1e-5 and r.label_mismatches == 0, str(r)
        _agrees_with_eager(out / "h", frame)
        outcome["exported"] += 1

    settings_ = settings(max_examples=12, deadline=None, derandomize=True)
    settings_(given(small_tables())(lambda frame: run(frame, False)))()
    settings(settings_, max_examples=1)(given(valid_small_tables())(lambda frame: run(frame, True)))()
    assert outcome["exported"] >= 1 and outcome["refused"] >= 6, outcome


def _agrees_with_eager(folder, frame):
    """The artifact's probabilities on the table's rows are the eager model's, within the tolerance policy."""
    features = [c for c in frame.columns if c != "label"]
    x = frame[features].to_numpy(np.float32).copy()  # (N, F), writable for torch
    with torch.inference_mode():
        eager = from_trained(load_checkpoint(folder, "h")).model(torch.from_numpy(x))[1].numpy()
    got = Classifier.load(folder).predict_proba(x)
    assert np.abs(got - eager).max() <= 1e-5


@pytest.mark.parametrize("k, fragment", [
    (1, "cross-validation folds k=1: expected 2 <= k <= 40 (the number of rows)"),
    (999, "cross-validation folds k=999: expected 2 <= k <= 40"),
    (25, "cross-validation folds k=25: more than the largest class's 23 rows"),
])
def test_a_bad_cv_k_is_one_line_before_training(tmp_path, k, fragment):
    """--cv k that the classes cannot fill: refused before any training (was scikit-learn's traceback after it)."""
    y = np.r_[np.zeros(23, int), np.ones(14, int), np.full(3, 2)]
    x = np.random.default_rng(0).normal(size=(40, 2))
    pd.DataFrame({"a": x[:, 0] + y, "b": x[:, 1], "y": y}).to_csv(tmp_path / "s40.csv", index=False)
    r = run_cli("train", "--data", tmp_path / "s40.csv", "--label", "y", "--cv", str(k), "--out", tmp_path / "o",
                "--quiet")
    assert_clean_error(r, 1, fragment)
    assert len(r.output.strip().splitlines()) == 1 and "epoch" not in r.output
    assert not (tmp_path / "o").exists()
