"""Categories and --impute median in streamed training (train/stream.py, tables/textscan.py): the same vocabulary,
encoding and fill as in memory, from a bounded first pass; and the exact streamed median and moments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import skip_or_fail

from edgeclf.runtime.errors import InputError, UnseenCategory
from edgeclf.tables.stats import FeatureStats, Medians, Moments
from edgeclf.train.stream import scan
from edgeclf.train.tabular import load_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from mixed_table import COLORS, mixed_table  # noqa: E402

EDGECLF = Path(sys.executable).with_name("edgeclf")
FEATURES = ["f0", "f1", "f2", "f3", "color"]


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EDGECLF), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_medians_are_numpys_exactly() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 1000, 1001):
        x = np.concatenate([rng.normal(size=(n, 1)), rng.integers(-3, 3, size=(n, 1)),  # many ties
                            rng.standard_cauchy(size=(n, 1)) * 1e30], axis=1).astype(np.float32)
        x[rng.random(x.shape) < 0.2] = np.nan
        x[0] = 1.0  # every column has a value
        m = Medians(3)
        for _ in range(2):
            for part in np.array_split(x, 3):
                m.add(part)
            if m.low is None:
                counts = m.next_pass()
        assert counts.tolist() == (~np.isnan(x)).sum(axis=0).tolist()
        want = [np.median(c[~np.isnan(c)].astype(np.float64)) for c in x.T]
        assert m.medians().tolist() == want, n


def test_moments_without_nan_are_unchanged_and_with_nan_count_each_feature() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 3)).astype(np.float32) * [1, 100, 1e-3]
    m = Moments(3)
    for part in np.array_split(x, 7):
        m.add(part)
    ref = FeatureStats.of(x)
    assert m.stats().as_dict() == ref.as_dict() and m.stats().n == 5000
    holes = x.copy()
    holes[rng.random(x.shape) < 0.1] = np.nan
    m = Moments(3)
    for part in np.array_split(holes, 7):
        m.add(part)
    for j in range(3):
        c = holes[:, j][~np.isnan(holes[:, j])]
        assert m.count[j] == len(c)
        np.testing.assert_allclose([m.mean[j], np.sqrt(m.m2[j] / m.count[j]), m.lo[j], m.hi[j]],
                                   [c.astype(np.float64).mean(), c.astype(np.float64).std(), c.min(), c.max()],
                                   rtol=1e-12)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    """A training CSV (600 rows: id, user_id, 4 numbers with 5% empty cells, color, free-text note) and a test
    table; with a test table every row of the file trains, so the fills are the file's medians."""
    root = tmp_path_factory.mktemp("streamcols")
    frame = mixed_table(600, seed=5).to_pandas()
    frame.to_csv(root / "visits.csv", index=False)
    mixed_table(200, seed=6, missing=0.0).to_pandas().to_csv(root / "test.csv", index=False)
    return root / "visits.csv", root / "test.csv", frame


@pytest.fixture(scope="module")
def streamed(table: tuple[Path, Path, pd.DataFrame]) -> tuple[Path, str]:
    path, test, _ = table
    out = path.parent / "out"
    res = _cli("train", "--data", path, "--label", "label", "--stream", "--impute", "median", "--test", test,
               "--epochs", "10", "--cv", "0", "--name", "visits", "--out", out)
    assert res.returncode == 0, res.stderr
    exported = _cli("export", "visits", "--out", out)
    assert exported.returncode == 0, exported.stderr
    return out / "visits", res.stderr


@pytest.mark.slow  # the module fixture trains streamed and exports once (~80 s on 2 busy cores)
def test_streamed_vocabulary_and_fill_are_the_in_memory_ones(table: tuple[Path, Path, pd.DataFrame],
                                                             streamed: tuple[Path, str]) -> None:
    path, _, frame = table
    folder, stderr = streamed
    features = json.loads((folder / "manifest.json").read_text())["features"]
    assert [f["name"] for f in features] == FEATURES
    vocab = sorted(set(frame["color"]))
    assert features[4]["categories"] == vocab == sorted(COLORS)
    assert load_table(path, "label", impute="median").categories[4] == tuple(vocab)  # the in-memory path's
    for f in features[:4]:  # the file's float32 values, their median in float64, rounded to float32
        values = frame[f["name"]].dropna().to_numpy(np.float32).astype(np.float64)
        assert f["fill"] == float(np.float32(np.median(values))), f["name"]
    codes = frame["color"].map(vocab.index).to_numpy(np.float64)
    assert features[4]["mean"] == float(str(np.float32(codes.mean()))) and features[4]["max"] == 3.0  # as_dict's
    assert "'note' (more than 32 values)" in stderr and "training median" in stderr


@pytest.mark.slow  # the module fixture trains streamed and exports once (~80 s on 2 busy cores)
def test_streamed_model_verifies_and_every_client_agrees(streamed: tuple[Path, str], tmp_path: Path) -> None:
    import torch

    from edgeclf.export.subject import from_trained
    from edgeclf.runtime import Classifier
    from edgeclf.train.checkpoint import load_checkpoint

    folder, _ = streamed
    assert _cli("verify", folder).returncode == 0
    new = mixed_table(300, seed=7).to_pandas()  # empty cells too
    clf = Classifier.load(folder)
    labels = clf.predict(new)
    x = new[FEATURES].copy()
    x["color"] = [sorted(COLORS).index(c) for c in x["color"]]  # the index, computed here
    with torch.inference_mode():
        p = from_trained(load_checkpoint(folder)).model(torch.from_numpy(x.to_numpy(np.float32)))[1].numpy()
    assert np.isnan(x.to_numpy(np.float32)).any()
    assert (labels == clf.classes_[p.argmax(axis=1)]).all()
    new.to_csv(tmp_path / "new.csv", index=False)
    res = _cli("predict", folder, tmp_path / "new.csv", "--output", tmp_path / "pred.csv", "--quiet")
    assert res.returncode == 0, res.stderr
    assert pd.read_csv(tmp_path / "pred.csv")["label"].tolist() == labels.tolist()


@pytest.mark.slow  # the module fixture trains streamed and exports once (~80 s on 2 busy cores)
def test_unseen_value_is_one_clear_error(streamed: tuple[Path, str], tmp_path: Path) -> None:
    from edgeclf.runtime import Classifier

    folder, _ = streamed
    new = mixed_table(10, seed=8).to_pandas()
    new.loc[4, "color"] = "purple"
    with pytest.raises(UnseenCategory, match=r"^row 4, column 'color': 'purple' is not a category seen in "
                                             r"training; expected one of \['amber', 'blue', 'green', 'red'\]"):
        Classifier.load(folder).predict(new)
    try:
        import dask.dataframe as dd
    except ImportError:
        skip_or_fail("dask[dataframe] is not installed (the scale extra has it)")
    from edgeclf.scale.dask import predict_dask

    frame = new.set_index(new.index + 100)  # the error names the frame's own index
    with pytest.raises(UnseenCategory, match=r"^row with index 104, column 'color': 'purple' is not a category "):
        predict_dask(dd.from_pandas(frame, npartitions=2), folder).compute(scheduler="synchronous")
    new.to_csv(tmp_path / "bad.csv", index=False)
    res = _cli("predict", folder, tmp_path / "bad.csv", "--quiet")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'bad.csv'} line 6, column 'color': 'purple' is not a category seen in training; expected "
        "one of ['amber', 'blue', 'green', 'red'] (or its index 0..3)"]


def test_named_free_text_and_empty_category_cells_are_one_line(table: tuple[Path, Path, pd.DataFrame],
                                                               tmp_path: Path) -> None:
    path, _, frame = table
    with pytest.raises(InputError, match=r"column 'note' holds more than 32 distinct text values: a category has "
                                         r"at most 32"):
        scan(path, "label", ["f0", "note"], seed=0, impute=True)
    holes = frame.copy()
    holes.loc[250, "color"] = None
    holes.to_csv(tmp_path / "holes.csv", index=False)
    with pytest.raises(UnseenCategory, match=r"row 251, column 'color': empty cell; expected one of \['amber'"):
        scan(tmp_path / "holes.csv", "label", seed=0, impute=True)
    without = _cli("train", "--data", path, "--label", "label", "--stream", "--out", tmp_path, "--quiet")
    assert without.returncode == 1 and len(without.stderr.strip().splitlines()) == 1
    assert "empty cell" in without.stderr and "--impute median" in without.stderr
