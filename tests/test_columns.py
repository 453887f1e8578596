"""Columns as users' tables hold them (issue 23 item 2): id-like columns are never features by default."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from edgeclf.tables.idlike import id_like, named_like_id
from edgeclf.train.api import train_data
from edgeclf.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from edge_helpers import STRICT, check_policy, csv_rows, gcc, run_program  # noqa: E402
from helpers import skip_or_fail  # noqa: E402
from mixed_table import COLORS, mixed_table  # noqa: E402
from test_c_header import PROBE_C as C_HEADER_PROBE  # noqa: E402

EDGECLF = Path(sys.executable).with_name("edgeclf")
FAST = ("--epochs", "3", "--cv", "0", "--quiet")


@pytest.mark.parametrize("name", ["id", "ID", "user_id", "row_index", "Index", "customerKey", "uuid", "order-idx",
                                  "userID", "key"])
def test_named_like_id(name: str) -> None:
    assert named_like_id(name)


@pytest.mark.parametrize("name", ["idle", "width", "keyboard", "hid", "fluid", "indexed_value", "humidity", "x1"])
def test_not_named_like_id(name: str) -> None:
    assert not named_like_id(name)


def test_counters_and_unique_text_are_ids_floats_repeats_and_shuffled_integers_are_not() -> None:
    n = 50
    t = pa.table({"serial": np.arange(n) * 7, "code": [f"c{i}" for i in range(n)], "temp": np.linspace(0, 1, n),
                  "level": np.arange(n) % 5, "maybe": pa.array([*range(n - 1), None]),
                  "cents": np.random.default_rng(0).permutation(n) * 13})  # distinct, but a measurement
    assert id_like(t, t.column_names) == {"serial": "integers increasing row by row",
                                          "code": "a distinct value in every row"}


@pytest.fixture(scope="module")
def mixed_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mixed") / "mixed.csv"
    frame = mixed_table(300, seed=1, missing=0.0).to_pandas().drop(columns=["note"])
    frame["serial"] = np.arange(300) * 3 + 11  # a counter, named like nothing
    frame.to_csv(path, index=False)
    return path


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EDGECLF), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_cli_leaves_id_columns_out_with_one_line(mixed_csv: Path, tmp_path: Path) -> None:
    res = _cli("train", "--data", mixed_csv, "--label", "label", "--name", "m", "--out", tmp_path, *FAST)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if "id-like" in ln]
    assert len(lines) == 1, res.stderr
    for column in ("'id'", "'user_id'", "'serial'"):
        assert column in lines[0]
    assert "Traceback" not in res.stderr
    assert load_checkpoint(tmp_path / "m").task.features == ("f0", "f1", "f2", "f3", "color")


def test_cli_features_can_take_an_id_column(mixed_csv: Path, tmp_path: Path) -> None:
    res = _cli("train", "--data", mixed_csv, "--label", "label", "--features", "id,f0", "--name", "m",
               "--out", tmp_path, *FAST)
    assert res.returncode == 0, res.stderr
    assert "id-like" not in res.stderr
    assert load_checkpoint(tmp_path / "m").task.features == ("id", "f0")


def test_api_warns_once_and_skips_ids(tmp_path: Path) -> None:
    frame = mixed_table(200, seed=2, missing=0.0).to_pandas().drop(columns=["note"])
    frame["row_index"] = np.arange(200.0)  # a float named like an index: left out by its name
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        train_data(frame, "label", tmp_path, name="api", epochs=2, cv=0)
    notes = [str(w.message) for w in seen if "id-like" in str(w.message)]
    assert len(notes) == 1 and all(c in notes[0] for c in ("'id'", "'user_id'", "'row_index'"))
    assert load_checkpoint(tmp_path / "api").task.features == ("f0", "f1", "f2", "f3", "color")


def test_only_ids_is_a_clear_error(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": np.arange(20), "label": ["a", "b"] * 10})
    from edgeclf.runtime.errors import InputError

    with pytest.raises(InputError, match=r"id-like columns left out: \['id'\]"):
        train_data(frame, "label", tmp_path, name="x", epochs=1, cv=0)


# ---------------------------------------------------------------------------------------------- --impute median

PROBE_C = C_HEADER_PROBE  # the C header's own probe program (tests/test_c_header.py)
FILLED = ("f0", "f1", "f2")  # f3 is complete in training: NaN there stays an error


def holey(rows: int, seed: int) -> pd.DataFrame:
    """mixed_table with f3 complete (its values from the same draws without holes)."""
    frame = mixed_table(rows, seed).to_pandas()
    frame["f3"] = mixed_table(rows, seed, missing=0.0).to_pandas()["f3"]
    return frame


@pytest.fixture(scope="module")
def imputed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("impute")
    holey(400, seed=3).drop(columns=["color"]).to_csv(root / "visits.csv", index=False)  # numbers only
    res = _cli("train", "--data", root / "visits.csv", "--label", "label", "--impute", "median", "--out", root,
               "--epochs", "20", "--cv", "0", "--quiet")
    assert res.returncode == 0, res.stderr
    note = [ln for ln in res.stderr.splitlines() if "training median" in ln]
    assert len(note) == 1 and all(f"'{f}'" in note[0] for f in FILLED) and "'f3'" not in note[0], res.stderr
    res = _cli("export", "visits", "--out", root, "--format", "c", "--format", "ort", "--batch-size", "1",
               "--batch-size", "64")
    assert res.returncode == 0, res.stderr
    return root / "visits"


@pytest.mark.slow  # the module fixture trains and exports once (~25 s on 2 cores)
def test_fill_values_are_the_training_medians(imputed: Path) -> None:
    from edgeclf.runtime import Classifier
    from edgeclf.train.tabular import load_table, split_table

    m = Classifier.load(imputed).manifest
    x_tr = split_table(load_table(imputed.parent / "visits.csv", "label", impute="median"))[0]
    want = [float(np.float32(np.nanmedian(x_tr[:, j].astype(np.float64)))) for j in range(3)]
    assert [f.fill for f in m.features] == [*want, None]
    assert _cli("verify", imputed).returncode == 0


def _eager(folder: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    from edgeclf.export.subject import from_trained

    with torch.inference_mode():
        z, p = from_trained(load_checkpoint(folder)).model(torch.from_numpy(x))
    return z.numpy(), p.numpy()


@pytest.mark.slow  # the module fixture trains and exports once (~25 s on 2 cores)
def test_runtime_takes_nan_where_filled_and_agrees_with_eager(imputed: Path) -> None:
    from edgeclf.runtime import Classifier

    new = holey(120, seed=11)
    x = new[["f0", "f1", "f2", "f3"]].to_numpy(np.float32)  # (N, 4) with NaN in f0..f2
    assert np.isnan(x[:, :3]).any() and not np.isnan(x[:, 3]).any()
    clf = Classifier.load(imputed)
    p = clf.predict_proba(new)  # a DataFrame with the empty cells as NaN
    _, ref = _eager(imputed, x)
    assert np.abs(p - ref).max() <= 1e-5
    fills = np.array([f.fill or 0.0 for f in clf.manifest.features], np.float32)
    _, by_hand = _eager(imputed, np.where(np.isnan(x), fills, x))  # NaN means "the median", nothing else
    assert np.abs(ref - by_hand).max() == 0.0


@pytest.mark.slow  # the module fixture trains and exports once (~25 s on 2 cores)
def test_cli_predict_fills_empty_cells(imputed: Path, tmp_path: Path) -> None:
    from edgeclf.runtime import Classifier

    new = holey(80, seed=12)
    new.to_csv(tmp_path / "new.csv", index=False)
    new.to_parquet(tmp_path / "new.parquet")
    want = list(Classifier.load(imputed).predict(new))
    m = Classifier.load(imputed).manifest
    x = new[[f.name for f in m.features]].to_numpy(np.float64)
    low, high = np.array([f.min for f in m.features]), np.array([f.max for f in m.features])
    with np.errstate(invalid="ignore"):  # an empty (filled) cell is not outside the range; a real value may be
        outside = int(((x < low) | (x > high)).any(axis=1).sum())
    for name in ("new.csv", "new.parquet"):  # the small-CSV reader and pyarrow's
        res = _cli("predict", imputed, tmp_path / name)
        assert res.returncode == 0, res.stderr
        assert [ln.split(",")[0] for ln in res.stdout.strip().splitlines()[1:]] == want
        said = re.search(r"([\d,]+) row\(s\) outside the training range", res.stderr)
        assert (int(said.group(1).replace(",", "")) if said else 0) == outside, res.stderr


@pytest.mark.slow  # the module fixture trains and exports once (~25 s on 2 cores)
def test_c_header_fills_nan(imputed: Path, tmp_path: Path) -> None:
    x = holey(100, seed=13)[["f0", "f1", "f2", "f3"]].to_numpy(np.float32)
    (tmp_path / "model.h").write_bytes((imputed / "model.h").read_bytes())
    (tmp_path / "probe.c").write_text(PROBE_C)
    out = run_program(gcc([tmp_path / "probe.c"], tmp_path / "probe", [tmp_path], STRICT), csv_rows(x))
    got = np.array([[float(v) for v in ln.split()] for ln in out.splitlines()])  # (N, 1 + 2 + 1)
    z, p = _eager(imputed, x)
    check_policy(got[:, :1], got[:, 1:3], z.astype(np.float64), p.astype(np.float64), got[:, 3].astype(int))


@pytest.mark.slow  # the module fixture trains and exports once (~25 s on 2 cores)
def test_nan_in_a_feature_without_fill_is_one_clear_line(imputed: Path, tmp_path: Path) -> None:
    from edgeclf.runtime import Classifier
    from edgeclf.runtime.errors import InputError

    new = holey(20, seed=14)
    new.loc[5, "f3"] = np.nan
    with pytest.raises(InputError, match=r"row 5, column 'f3'.*fills NaN in \['f0', 'f1', 'f2'\] only"):
        Classifier.load(imputed).predict(new)
    new.to_csv(tmp_path / "bad.csv", index=False)
    res = _cli("predict", imputed, tmp_path / "bad.csv", "--quiet")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "'f3'" in res.stderr, res.stderr


def test_without_impute_an_empty_cell_is_an_error(tmp_path: Path) -> None:
    holey(100, seed=4).to_csv(tmp_path / "t.csv", index=False)
    res = _cli("train", "--data", tmp_path / "t.csv", "--label", "label", "--out", tmp_path, *FAST)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "empty cell" in res.stderr and "--impute median" in res.stderr


# ---------------------------------------------------------------------------------------------- categories

COLUMNS = ["f0", "f1", "f2", "f3", "color"]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole story: ids, a category, free text, 5% empty cells; trained with --impute median, exported."""
    root = tmp_path_factory.mktemp("mixed")
    holey(400, seed=5).to_csv(root / "shop.csv", index=False)
    res = _cli("train", "--data", root / "shop.csv", "--label", "label", "--impute", "median", "--out", root,
               "--epochs", "30", "--cv", "0", "--quiet")
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert sum("id-like" in ln for ln in lines) == 1, lines
    assert sum("'note' (" in ln and "more than 32" in ln for ln in lines) == 1, lines
    res = _cli("export", "shop", "--out", root, "--format", "c", "--format", "ort", "--batch-size", "1",
               "--batch-size", "64")
    assert res.returncode == 0, res.stderr
    assert _cli("verify", root / "shop").returncode == 0
    return root / "shop"


def _codes(frame: pd.DataFrame) -> np.ndarray:
    """The model's input computed here: color as its index in the sorted vocabulary."""
    vocab = sorted(COLORS)
    x = frame[COLUMNS].copy()
    x["color"] = [vocab.index(c) for c in x["color"]]
    return x.to_numpy(np.float32)


@pytest.mark.slow  # the module fixture trains and exports once (~25 s on 2 cores)
def test_category_vocabulary_in_manifest_and_one_hot_in_graph(mixed: Path) -> None:
    import onnx

    from edgeclf.runtime import Classifier

    m = Classifier.load(mixed).manifest
    assert [f.name for f in m.features] == COLUMNS
    assert m.features[4].categories == tuple(sorted(COLORS)) and m.features[4].fill is None
    assert all(f.categories is None for f in m.features[:4])
    ops = {n.op_type for n in onnx.load(str(mixed / "model.b1.onnx")).graph.node}
    assert {"Equal", "IsNaN", "Where"} <= ops, ops


@pytest.mark.slow  # the module fixture trains and exports once (~25 s on 2 cores)
def test_runtime_takes_text_or_indices_and_agrees_with_eager(mixed: Path) -> None:
    from edgeclf.runtime import Classifier

    new = holey(150, seed=21)
    clf = Classifier.load(mixed)
    _, ref = _eager(mixed, _codes(new))
    for given in (new, new[COLUMNS].to_numpy(object).tolist(), _codes(new)):  # frame, rows of text, indices
        assert np.abs(clf.predict_proba(given) - ref).max() <= 1e-5


@pytest.mark.slow  # the module fixture trains and exports once (~25 s on 2 cores)
def test_cli_and_dask_predict_with_text_categories(mixed: Path, tmp_path: Path) -> None:
    from edgeclf.runtime import Classifier
    from edgeclf.scale.dask import predict_dask

    new = holey(90, seed=22)
    want = list(Classifier.load(mixed).predict(new))
    new.to_csv(tmp_path / "new.csv", index=False)
    new.to_parquet(tmp_path / "new.parquet")
    for name in ("new.csv", "new.parquet"):
        res = _cli("predict", mixed, tmp_path / name, "--quiet")
        assert res.returncode == 0, res.stderr
        assert [ln.split(",")[0] for ln in res.stdout.strip().splitlines()[1:]] == want
    try:
        import dask.dataframe as dd
    except ImportError:
        skip_or_fail("dask[dataframe] is not installed (the scale extra has it)")
    got = predict_dask(dd.from_pandas(new, npartitions=3), mixed).compute(scheduler="synchronous")
    assert list(got["label"]) == want


@pytest.mark.slow  # the module fixture trains and exports once (~25 s on 2 cores)
def test_c_header_takes_category_indices(mixed: Path, tmp_path: Path) -> None:
    x = _codes(holey(100, seed=23))
    (tmp_path / "model.h").write_bytes((mixed / "model.h").read_bytes())
    (tmp_path / "probe.c").write_text(PROBE_C)
    out = run_program(gcc([tmp_path / "probe.c"], tmp_path / "probe", [tmp_path], STRICT), csv_rows(x))
    got = np.array([[float(v) for v in ln.split()] for ln in out.splitlines()])
    z, p = _eager(mixed, x)
    check_policy(got[:, :1], got[:, 1:3], z.astype(np.float64), p.astype(np.float64), got[:, 3].astype(int))
    assert "features[].categories" in (mixed / "model.h").read_text()


@pytest.mark.slow  # the module fixture trains and exports once (~25 s on 2 cores)
def test_unseen_category_is_one_clear_line(mixed: Path, tmp_path: Path) -> None:
    from edgeclf.runtime import Classifier
    from edgeclf.runtime.errors import InputError

    new = holey(10, seed=24)
    codes = _codes(new)
    codes[4, 4] = 7.0  # an index past the vocabulary's 4
    new.loc[3, "color"] = "purple"
    with pytest.raises(InputError, match=r"row 3, column 'color': 'purple' is not a category seen in training; "
                                         r"expected one of \['amber', 'blue', 'green', 'red'\]"):
        Classifier.load(mixed).predict(new)
    with pytest.raises(InputError, match=r"column 'color': 7.0 is not a category"):
        Classifier.load(mixed).predict(codes)
    new.to_csv(tmp_path / "bad.csv", index=False)
    res = _cli("predict", mixed, tmp_path / "bad.csv", "--quiet")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "'purple'" in res.stderr and "'amber'" in res.stderr
    new.loc[3, "color"] = ""  # written as an empty CSV cell: the reader's "" says "empty cell" as a null does
    new.to_csv(tmp_path / "empty.csv", index=False)
    res = _cli("predict", mixed, tmp_path / "empty.csv", "--quiet")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "column 'color': empty cell; expected one of ['amber', 'blue', 'green', 'red']" in res.stderr, res.stderr


@pytest.mark.slow  # the module fixture trains and exports once (~25 s on 2 cores)
def test_parity_check_sees_a_wrong_fill(mixed: Path, tmp_path: Path) -> None:
    """The check rows hold NaN copies: a file whose fill differs (identical on every complete row) fails."""
    import copy

    import torch

    from edgeclf.export.checks import check_file, check_set
    from edgeclf.export.describe import graph_docs
    from edgeclf.export.formats import write_onnx
    from edgeclf.export.subject import from_trained
    from edgeclf.runtime.manifest import FileEntry

    spec = from_trained(load_checkpoint(mixed))
    assert np.isnan(spec.check_rows).any() and not np.isnan(spec.check_rows[:, 3:]).any()
    check = check_set(spec.model, spec.check_rows, spec.domain, spec.check_what)
    entry = FileEntry("model.b64.onnx", "onnx", 64, "", 0, 20)
    assert check_file(mixed / "model.b64.onnx", entry, check)
    bad = copy.deepcopy(spec.model)
    with torch.no_grad():
        bad.net[0].fill[0] += 0.5  # f0's median moved: only rows with an empty f0 change
    write_onnx(bad.eval(), spec.n_features, 64, 20, tmp_path / "bad.onnx", {}, graph_docs(spec))
    assert not check_file(tmp_path / "bad.onnx", FileEntry("bad.onnx", "onnx", 64, "", 0, 20), check)


def test_an_int_beyond_float64_in_a_category_model_is_one_clean_error():
    """A row list with 10**400 in a number column: float() overflows; the Classifier names the column (no
    OverflowError traceback)."""
    from edgeclf.runtime import InputError
    from edgeclf.runtime.categories import encode

    vocabs = (None, ("red", "blue"))
    with pytest.raises(InputError, match=r"^column 'f0': value '1000000000.*' is not a number that fits float64$"):
        encode([[10**400, "red"]], ("f0", "color"), vocabs)
    assert encode([[1.5, "blue"]], ("f0", "color"), vocabs).tolist() == [[1.5, 1.0]]


@pytest.mark.slow  # the module fixture trains and exports once (~25 s on 2 cores)
def test_the_c_example_takes_empty_filled_cells_and_checks_category_indices(mixed: Path, tmp_path: Path) -> None:
    """examples/c/predict.c (strict flags, sanitizers) on a header with fill values and a category: an empty cell
    or nan in a filled feature is taken (labels equal to the runtime's on the same rows), a category index outside
    its vocabulary and an empty cell in an unfilled feature are one stderr line each, exit 1."""
    from edge_helpers import SANITIZE

    from edgeclf.runtime import Classifier

    x = _codes(holey(120, seed=29))  # (N, 5) with NaN in f0..f2
    assert np.isnan(x[:, :3]).any() and not np.isnan(x[:, 3:]).any()
    lines = [",".join("" if np.isnan(v) and i % 2 else ("nan" if np.isnan(v) else repr(float(v))) for v in row)
             for i, row in enumerate(x)]  # empty cells on odd rows, "nan" on even ones
    (tmp_path / "model.h").write_bytes((mixed / "model.h").read_bytes())
    exe = gcc([Path(__file__).resolve().parents[1] / "examples" / "c" / "predict.c"], tmp_path / "predict",
              [tmp_path], SANITIZE)
    out = run_program(exe, ",".join(COLUMNS) + "\n" + "\n".join(lines) + "\n")
    want = Classifier.load(mixed).predict(x).tolist()
    assert out.splitlines() == want
    vocab = len(COLORS)
    for row, fragment in ((f"1,2,3,4,{vocab}", f"column 5 (color): {vocab} is not a category index: expected an "
                                                f"integer in 0..{vocab - 1}"),
                          ("1,2,3,4,1.5", "column 5 (color): 1.5 is not a category index"),
                          ("1,2,3,,1", "line 1: expected 5 comma-separated finite numbers (empty or nan only where "
                                       "the model fills a feature)")):
        done = subprocess.run([str(exe)], input=row + "\n", capture_output=True, text=True,
                              env={"ASAN_OPTIONS": "detect_leaks=0"})
        assert done.returncode == 1 and done.stdout == "", (row, done)
        assert len(done.stderr.splitlines()) == 1 and fragment in done.stderr, (row, done.stderr)


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan, ""])
def test_a_missing_category_is_an_empty_cell_whatever_holds_it(missing: object) -> None:
    """A DataFrame's None or NaN, or an empty string, in a category column reads as an empty cell, as the CSV
    readers say it (not "nan is not a category seen in training")."""
    from edgeclf.runtime.categories import encode
    from edgeclf.runtime.errors import UnseenCategory

    frame = pd.DataFrame({"a": [1.0, 2.0], "c": ["red", missing]})
    with pytest.raises(UnseenCategory, match=r"row 1, column 'c': empty cell; expected one of \['blue', 'red'\]"):
        encode(frame, ["a", "c"], [None, ("blue", "red")])
