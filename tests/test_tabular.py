"""Tabular data: every bad input is a one-line InputError naming file, column and row; happy paths; builtins."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeclf.runtime.errors import InputError
from edgeclf.train.datasets import BUILTIN, cv_accuracy, identifier, load_builtin, logreg_baseline, make_logreg
from edgeclf.train.tabular import (
    DataWarning,
    feature_schema,
    load_table,
    sanitize_name,
    split_table,
    standardisation,
)


def frame(n: int = 20, seed: int = 0) -> pd.DataFrame:
    """A valid table: three numeric features and a two-class string label, 10 rows each."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.integers(0, 100, size=n),
            "c": rng.normal(size=n) * 10,
            "label": np.where(np.arange(n) % 2 == 0, "cat", "dog"),
        }
    )


def write(df: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


def with_cell(df: pd.DataFrame, col: str, row: int, value: Any) -> pd.DataFrame:
    df = df.copy()
    df[col] = df[col].astype(object)
    df.loc[row, col] = value
    return df


# Each case: (id, make(tmp_path) -> path, label, features, fragments the message must hold). Rows count from 1
# under the header, so pandas row 6 is "row 7".
def _corrupt(p: Path) -> Path:
    good = write(frame(), p.with_name("good.parquet"))
    p.write_bytes(good.read_bytes()[:-40])  # footer cut off, as by an interrupted copy
    return p


def _dup_parquet(p: Path) -> Path:
    pq.write_table(pa.table([[1.0] * 20, [2.0] * 20, ["x", "y"] * 10], names=["a", "a", "label"]), p)
    return p


def _raw(text: str | bytes) -> Callable[[Path], Path]:
    def make(p: Path) -> Path:
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return p

    return make


def _df(df: pd.DataFrame) -> Callable[[Path], Path]:
    return lambda p: write(df, p)


def _many_labels() -> pd.DataFrame:
    return pd.DataFrame({"a": np.arange(1500.0), "label": np.arange(1500)})


def _rows_csv(header: str, rows: list[str]) -> str:
    return "\n".join([header, *rows]) + "\n"


GOOD_ROWS = [f"{i},{i % 3},{'cat' if i % 2 else 'dog'}" for i in range(20)]

BAD = [
    ("missing-file", lambda p: p, "label", None, ["bad.csv", "no such file"]),
    ("directory", lambda p: (p.mkdir(), p)[1], "label", None, ["bad.csv", "not a file"]),
    ("corrupt-parquet", _corrupt, "label", None, ["bad.parquet", "Parquet"]),
    ("csv-bytes-as-parquet", _raw(_rows_csv("a,b,label", GOOD_ROWS)), "label", None, ["bad.parquet", "Parquet"]),
    ("no-header", _raw(_rows_csv("0.5,1,2", GOOD_ROWS)), "2", None, ["bad.csv", "header"]),
    ("label-absent", _df(frame()), "target", None, ["bad.csv", "'target' not found", "'a'", "'label'"]),
    ("label-absent-parquet", _df(frame()), "target", None, ["bad.parquet", "'target' not found", "'label'"]),
    ("feature-absent", _df(frame()), "label", ["a", "zz"], ["bad.csv", "'zz' not found"]),
    ("label-as-feature", _df(frame()), "label", ["a", "label"],
     ["bad.csv: column 'label' is the label and cannot also be a feature"]),
    ("non-numeric", _df(with_cell(frame(), "b", 6, "abc")), "label", ["a", "b"], ["bad.csv", "'b'", "row 7", "'abc'"]),
    (
        "non-numeric-parquet",
        _df(frame().astype({"a": str}).pipe(with_cell, "a", 3, "x1")),
        "label",
        ["a"],
        ["bad.parquet", "'a'", "row 4", "'x1'"],
    ),
    ("empty-feature-cell", _df(with_cell(frame(), "c", 11, None)), "label", None, ["bad.csv", "'c'", "row 12", "empty"]),
    (
        "nan-feature",
        _df(with_cell(frame(), "a", 4, np.nan).astype({"a": float})),
        "label",
        None,
        ["bad.parquet", "'a'", "row 5"],
    ),
    (
        "inf-feature",
        _df(with_cell(frame(), "a", 2, np.inf).astype({"a": float})),
        "label",
        None,
        ["bad.parquet", "'a'", "row 3", "inf"],
    ),
    ("inf-feature-csv", _df(with_cell(frame(), "a", 2, "-inf")), "label", None, ["bad.csv", "'a'", "row 3", "inf"]),
    (
        "beyond-float32",
        _df(with_cell(frame(), "c", 8, 1e300).astype({"c": float})),
        "label",
        None,
        ["bad.csv", "'c'", "row 9", "float32"],
    ),
    ("empty-label", _df(with_cell(frame(), "label", 9, None)), "label", None, ["bad.csv", "'label'", "row 10", "empty"]),
    (
        "blank-label-parquet",
        _df(with_cell(frame(), "label", 9, "  ")),
        "label",
        None,
        ["bad.parquet", "'label'", "row 10", "empty"],
    ),
    (
        "nan-label",
        _df(frame().assign(label=[0.0, 1.0] * 5 + [np.nan] + [1.0] * 9)),
        "label",
        None,
        ["bad.parquet", "'label'", "row 11"],
    ),
    ("single-class", _df(frame().assign(label="cat")), "label", None, ["bad.csv", "'label'", "one class", "'cat'"]),
    (
        "lonely-class",
        _df(with_cell(frame(), "label", 13, "eel")),
        "label",
        None,
        ["bad.csv", "'label'", "'eel'", "row 14", "2 rows per class"],
    ),
    ("regression-target", _df(_many_labels()), "label", None, ["bad.parquet", "'label'", "1500", "regression"]),
    (
        "float-label",
        _df(frame().assign(label=np.linspace(0, 1, 20))),
        "label",
        None,
        ["bad.csv", "'label'", "row 2", "0.05", "whole number"],
    ),
    ("duplicate-columns", _raw(_rows_csv("a,a,label", GOOD_ROWS)), "label", None, ["bad.csv", "duplicate", "'a'"]),
    ("duplicate-columns-parquet", _dup_parquet, "label", None, ["bad.parquet", "duplicate", "'a'"]),
    ("nine-rows", _df(frame(9)), "label", None, ["bad.csv", "9 data rows", "10"]),
    ("header-only", _raw("a,b,label\n"), "label", None, ["bad.csv", "0 data rows"]),
    ("empty-file", _raw(""), "label", None, ["bad.csv", "CSV"]),
    (
        "ragged-row",
        _raw(_rows_csv("a,b,label", GOOD_ROWS[:5] + ["1,2,cat,extra"] + GOOD_ROWS[5:])),
        "label",
        None,
        ["bad.csv", "row 6", "4 cells", "3"],
    ),
    (
        "not-utf8",
        _raw(_rows_csv("a,b,label", GOOD_ROWS).encode() + b"1,2,\xff\xfe\n"),
        "label",
        None,
        ["bad.csv", "row 21", "UTF-8"],
    ),
    ("bool-feature", _df(frame().assign(b=[True, False] * 10)), "label", ["a", "b"], ["bad.parquet", "'b'", "0/1"]),
    ("no-numeric-feature", _df(frame()[["label"]].assign(s="x")), "label", None, ["bad.csv", "no numeric column"]),
]


def _suffix(case_id: str) -> str:
    parquet = "parquet" in case_id or case_id in {
        "nan-feature",
        "inf-feature",
        "blank-label-parquet",
        "nan-label",
        "regression-target",
        "bool-feature",
    }
    return ".parquet" if parquet else ".csv"


@pytest.mark.parametrize("case_id, make, label, features, fragments", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_one_line_input_error(tmp_path, case_id, make, label, features, fragments):
    path = make(tmp_path / f"bad{_suffix(case_id)}")
    with pytest.raises(InputError) as info:
        load_table(path, label, features)
    msg = str(info.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, (f, msg)


def test_dataframe_errors_name_the_index_and_the_frame():
    df = with_cell(frame(), "a", 5, "oops").set_index(pd.Index([f"id{i}" for i in range(20)]))
    with pytest.raises(InputError, match=r"^customers: column 'a' row 6 \(index 'id5'\): non-numeric value 'oops'"):
        load_table(df, "label", ["a", "b"], where="customers")
    dup = pd.DataFrame([[1, 2, "x"]] * 12, columns=["a", "a", "label"])
    with pytest.raises(InputError, match=r"^DataFrame: duplicate column names \['a'\]"):
        load_table(dup, "label")


def test_column_names_with_newlines_stay_on_one_line(tmp_path):
    df = frame().rename(columns={"a": "bad\nname"})
    path = write(with_cell(df, "bad\nname", 0, "?"), tmp_path / "t.csv")
    with pytest.raises(InputError) as info:
        load_table(path, "label", ["bad\nname"])
    assert "\n" not in str(info.value) and "bad\\nname" in str(info.value)


def test_not_a_source():
    with pytest.raises(InputError, match="expected a CSV/Parquet path or a pandas DataFrame, got int"):
        load_table(3, "label")


# ---------------------------------------------------------------------------------------------- happy paths


def test_string_labels_sorted_and_features_default_to_numeric_columns(tmp_path):
    df = frame().assign(note="free text", label=["zebra", "ant", "moth", "ant"] * 5)
    t = load_table(write(df, tmp_path / "t.csv"), "label")
    assert t.classes == ("ant", "moth", "zebra")
    assert t.features == ("a", "b", "c")
    assert any("'note'" in w for w in t.warnings)
    assert t.x.dtype == np.float32 and t.x.shape == (20, 3) and t.y.dtype == np.int64
    np.testing.assert_array_equal(np.array(t.classes)[t.y], df["label"].to_numpy())
    np.testing.assert_allclose(t.x, df[["a", "b", "c"]].to_numpy(np.float32))
    assert t.source.endswith("t.csv")


def test_integer_labels_sort_numerically_and_stay_strings(tmp_path):
    df = frame().assign(label=[10, 2, 3, 2] * 5)
    t = load_table(write(df, tmp_path / "t.parquet"), "label")
    assert t.classes == ("2", "3", "10")
    assert t.features == ("a", "b", "c")  # an integer label is not taken as a feature
    np.testing.assert_array_equal(np.array(t.classes)[t.y], df["label"].astype(str).to_numpy())


def test_integral_float_labels_are_integers(tmp_path):
    t = load_table(write(frame().assign(label=[1.0, 0.0] * 10), tmp_path / "t.csv"), "label")
    assert t.classes == ("0", "1")


def test_columns_in_any_order_and_a_features_subset(tmp_path):
    df = frame()
    shuffled = df[["label", "c", "a", "b"]]
    t = load_table(write(shuffled, tmp_path / "t.csv"), "label", ["b", "a"])
    assert t.features == ("b", "a")
    np.testing.assert_allclose(t.x, df[["b", "a"]].to_numpy(np.float32))


def test_parquet_csv_and_dataframe_read_the_same(tmp_path):
    df = frame(40, seed=3).assign(label=["x", "y", "z", "y"] * 10)
    csv = load_table(write(df, tmp_path / "t.csv"), "label")
    parquet = load_table(write(df, tmp_path / "t.pq"), "label")
    direct = load_table(df, "label")
    for other in (parquet, direct):
        np.testing.assert_array_equal(csv.x, other.x)
        np.testing.assert_array_equal(csv.y, other.y)
        assert (csv.classes, csv.features) == (other.classes, other.features)
    assert direct.source == "DataFrame"


def test_categorical_label_in_parquet(tmp_path):
    df = frame().astype({"label": "category"})
    assert load_table(write(df, tmp_path / "t.parquet"), "label").classes == ("cat", "dog")


def test_stratified_split_keeps_class_ratios():
    df = pd.DataFrame({"a": np.arange(100.0), "label": ["big"] * 70 + ["mid"] * 20 + ["small"] * 10})
    t = load_table(df, "label")
    x_tr, y_tr, x_te, y_te = split_table(t, seed=7)
    assert x_tr.shape == (80, 1) and x_te.shape == (20, 1)
    assert np.bincount(y_tr).tolist() == [56, 16, 8] and np.bincount(y_te).tolist() == [14, 4, 2]
    again = split_table(t, seed=7)
    np.testing.assert_array_equal(again[0], x_tr)
    assert not np.array_equal(split_table(t, seed=8)[0], x_tr)
    assert sorted(np.concatenate([x_tr, x_te])[:, 0].tolist()) == list(range(100))


def test_split_too_small_for_every_class_on_both_sides():
    df = pd.DataFrame({"a": np.arange(10.0), "label": list("aabbccddee")})
    with pytest.raises(InputError, match="10 rows in 5 classes cannot be split 80%/20%"):
        split_table(load_table(df, "label"))


def test_test_table_by_reference(tmp_path):
    train = load_table(write(frame(40).assign(label=["a", "b", "c", "d"] * 10), tmp_path / "train.csv"), "label")
    test_df = frame(3, seed=5).assign(label=["d", "b", "d"])[["label", "c", "b", "a", "b"][:4]]
    test_df["extra"] = "ignored"
    test = load_table(write(test_df, tmp_path / "test.csv"), "label", reference=train)
    assert test.classes == train.classes and test.features == ("a", "b", "c")
    x_tr, y_tr, x_te, y_te = split_table(train, test=test)
    assert x_tr is train.x and y_te.tolist() == [3, 1, 3]
    np.testing.assert_allclose(x_te, test_df[["a", "b", "c"]].to_numpy(np.float32))


def test_test_table_with_unseen_class(tmp_path):
    train = load_table(frame(), "label")
    path = write(frame(4).assign(label=["cat", "emu", "dog", "cat"]), tmp_path / "test.csv")
    with pytest.raises(InputError, match=r"test.csv: label column 'label': class 'emu' is not among the training classes"):
        load_table(path, "label", reference=train)


def test_split_remaps_an_independently_loaded_test_table():
    train = load_table(frame(30).assign(label=["a", "b", "c"] * 10), "label")
    test = load_table(frame(20).assign(label=["c", "b"] * 10), "label", where="test")
    assert test.classes == ("b", "c")
    _, _, _, y_te = split_table(train, test=test)
    assert y_te.tolist() == [2, 1] * 10
    unseen = load_table(frame(20).assign(label=["c", "q"] * 10), "label", where="test2")
    with pytest.raises(InputError, match="test2: .*class 'q' is not among the training classes"):
        split_table(train, test=unseen)
    other = load_table(frame(20).assign(label=["c", "b"] * 10), "label", ["a", "b"], where="test3")
    with pytest.raises(InputError, match=r"test3: features \['a', 'b'\] differ"):
        split_table(train, test=other)


def test_constant_feature_warns_and_std_becomes_one():
    x = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 2.0], [5.0, 5.0, 2.0]], dtype=np.float32)  # (3, 3)
    with pytest.warns(DataWarning) as record:
        mean, std = standardisation(x, ["a", "flat", "b"])
    assert [str(w.message).split(":")[0] for w in record] == [
        "feature 'flat' is constant in the training split (value 5.0)",
        "feature 'b' is constant in the training split (value 2.0)",
    ]
    assert mean.dtype == np.float32 and std.dtype == np.float32
    np.testing.assert_allclose(mean, [3.0, 5.0, 2.0])
    np.testing.assert_allclose(std, [np.std([1.0, 3.0, 5.0]), 1.0, 1.0], rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        standardisation(x[:, :1])  # nothing constant: no warning


def test_constant_column_in_a_file_still_loads(tmp_path):
    t = load_table(write(frame().assign(b=7), tmp_path / "t.csv"), "label")
    assert t.features == ("a", "b", "c")
    x_tr = split_table(t)[0]
    with pytest.warns(DataWarning, match="'b' is constant"):
        standardisation(x_tr, t.features)


def test_feature_schema_is_json_safe_float32():
    x = np.array([[0.1, -3.0], [0.2, 1e30], [0.4, 7.0]], dtype=np.float32)  # (3, 2)
    schema = feature_schema(x, ["p", "q"])
    assert [s["name"] for s in schema] == ["p", "q"]
    assert json.loads(json.dumps(schema, allow_nan=False)) == schema
    for s, col in zip(schema, x.T):
        assert s["dtype"] == "float32"
        assert s["min"] == float(col.min()) and s["max"] == float(col.max())
        for key in ("mean", "std"):
            assert float(np.float32(s[key])) == s[key]
        assert s["mean"] == pytest.approx(col.astype(np.float64).mean(), rel=1e-6)
    with pytest.raises(InputError, match=r"expected \(N, 3\)"):
        feature_schema(x, ["p", "q", "r"])


@pytest.mark.parametrize(
    "stem, expected",
    [
        ("Iris", "iris"),
        ("My Data (v2)", "my_data_v2"),
        ("café-Ünïcode", "cafe-unicode"),
        ("---", "table"),
        ("", "table"),
        ("__x__", "x"),
        ("a" * 100, "a" * 64),
        ("a" * 63 + " b", "a" * 63),
        ("../etc/passwd", "etc_passwd"),
    ],
)
def test_sanitize_name(stem, expected):
    name = sanitize_name(stem)
    assert name == expected
    assert 1 <= len(name) <= 64 and set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-")


# ---------------------------------------------------------------------------------------------- builtins


@pytest.mark.parametrize(
    "name, shape, n_classes, first_feature, first_class",
    [
        ("iris", (150, 4), 3, "sepal_length_cm", "setosa"),
        ("wine", (178, 13), 3, "alcohol", "class_0"),
        ("breast_cancer", (569, 30), 2, "mean_radius", "malignant"),
        ("digits", (1797, 64), 10, "pixel_0_0", "0"),
    ],
)
def test_builtin_datasets(name, shape, n_classes, first_feature, first_class):
    t = load_builtin(name)
    assert t.x.shape == shape and t.x.dtype == np.float32 and t.y.dtype == np.int64
    assert len(t.classes) == n_classes and t.classes[0] == first_class
    assert t.features[0] == first_feature and len(t.features) == shape[1]
    assert all(f.isidentifier() for f in t.features)
    assert np.bincount(t.y).min() >= 2 and np.isfinite(t.x).all()


def test_builtin_unknown_and_identifier():
    with pytest.raises(InputError, match="unknown dataset 'mnist': expected one of iris, wine, breast_cancer, digits"):
        load_builtin("mnist")
    assert identifier("od280/od315_of_diluted_wines") == "od280_od315_of_diluted_wines"
    assert identifier("sepal length (cm)") == "sepal_length_cm"
    assert BUILTIN == ("iris", "wine", "breast_cancer", "digits")


def test_cv_accuracy_matches_sklearn_cross_val_score():
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    t = load_builtin("iris")
    mean, std = cv_accuracy(make_logreg, t.x, t.y, k=5, seed=0)
    ref = cross_val_score(make_logreg(), t.x, t.y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert mean == pytest.approx(ref.mean()) and std == pytest.approx(ref.std())
    assert mean == pytest.approx(0.96)  # the baseline figure quoted in issue 13 (folds of seed 0)


def test_logreg_baseline_and_fold_checks():
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    t = load_builtin("wine")
    r = logreg_baseline(*split_table(t), t.x, t.y, k=3, seed=42)
    assert set(r) == {"test_accuracy", "cv_mean", "cv_std", "k"} and r["k"] == 3
    assert 0.9 < r["test_accuracy"] <= 1 and 0.9 < r["cv_mean"] <= 1
    ref = cross_val_score(make_logreg(), t.x, t.y, cv=StratifiedKFold(3, shuffle=True, random_state=42))
    assert (r["cv_mean"], r["cv_std"]) == (pytest.approx(ref.mean()), pytest.approx(ref.std())) and ref.std() > 0
    with pytest.raises(InputError, match="k=1"):
        cv_accuracy(make_logreg, t.x, t.y, k=1, seed=0)
    y = np.array([0] * 8 + [1] * 2)
    with pytest.warns(DataWarning, match="smallest class has 2 rows"):
        cv_accuracy(make_logreg, np.arange(10.0).reshape(-1, 1), y, k=3, seed=0)


# ---------------------------------------------------------------------------------------------- properties

# mostly plain names, with the characters CSV writers must quote and anything else UTF-8 can hold
NAMES = st.text(
    alphabet=st.sampled_from(list('ab1 ,"\n\t;é_')) | st.characters(codec="utf-8", exclude_categories=("Cs",)),
    min_size=0,
    max_size=5,
)
FLOATS = st.sampled_from([0.5, 1.0, -2.0]) | st.floats(allow_nan=True, allow_infinity=True)
TEXTS = st.sampled_from(["a", "b", "", "1", "x,y", 'q"', "l\nm"]) | NAMES


def column(draw: st.DrawFn, n: int, is_label: bool) -> list[Any]:
    kind = draw(st.sampled_from(["int", "float", "str", "bool"]))
    few = is_label and draw(st.integers(0, 3)) > 0  # labels mostly from a few values, so that some tables load
    if kind == "int":
        col: list[Any] = draw(st.lists(st.integers(-2, 2) if few else st.integers(-(2**40), 2**40), min_size=n, max_size=n))
    elif kind == "float":
        col = draw(st.lists(st.sampled_from([0.0, 1.0]) if few else FLOATS, min_size=n, max_size=n))
    elif kind == "str":
        col = draw(st.lists(st.sampled_from(["a", "b", "é"]) if few else TEXTS, min_size=n, max_size=n))
    else:
        col = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if n and kind != "float" and draw(st.integers(0, 3)) == 0:
        col[draw(st.integers(0, n - 1))] = None  # a missing cell somewhere
    return col


@st.composite
def tables(draw: st.DrawFn) -> tuple[pd.DataFrame, str]:
    """A random small table (0-60 rows, 1-5 columns of odd names, int/float/str/bool, holes) and a label name."""
    n = draw(st.integers(0, 9) | st.integers(10, 60))
    names = draw(st.lists(NAMES, min_size=2, max_size=5, unique=draw(st.integers(0, 4)) > 0))  # 1 in 5: duplicates
    at = draw(st.integers(0, len(names) - 1))
    df = pd.DataFrame({i: column(draw, n, i == at) for i in range(len(names))})
    df.columns = names  # duplicates allowed on purpose
    label = names[at] if draw(st.integers(0, 9)) else draw(NAMES)
    return df, label


def _check_success(t: Any, split: Any) -> None:
    n, f = t.x.shape
    assert t.x.dtype == np.float32 and t.y.dtype == np.int64 and t.y.shape == (n,) and f == len(t.features) >= 1
    assert np.isfinite(t.x).all() and 0 <= t.y.min() and t.y.max() < len(t.classes) and len(set(t.classes)) == len(t.classes)
    x_tr, y_tr, x_te, y_te = split
    assert len(x_tr) + len(x_te) == n and x_tr.dtype == np.float32 and x_tr.shape[1] == f
    # every class is trained on; a class of 2 or 3 rows may be absent from the 20% test share
    assert set(y_tr.tolist()) == set(range(len(t.classes))) and set(y_te.tolist()) <= set(y_tr.tolist())


@st.composite
def valid_tables(draw: st.DrawFn) -> tuple[pd.DataFrame, str]:
    """A table that must load: 12-40 rows, 1-3 numeric features of plain names, a label of 2-3 classes with at
    least 4 rows each (so that the 80/20 split holds every class in training)."""
    n = draw(st.integers(12, 40))
    k = draw(st.integers(2, 3))
    order = draw(st.permutations(range(n)))
    labels = [["a", "b", "c"][order[i] % k] if n // k >= 4 else ["a", "b"][order[i] % 2] for i in range(n)]
    frame: dict[str, Any] = {}
    for j in range(draw(st.integers(1, 3))):
        values = st.integers(-1000, 1000) if draw(st.booleans()) else st.floats(-1e6, 1e6, allow_subnormal=False)
        frame[f"f{j}"] = draw(st.lists(values, min_size=n, max_size=n))
    frame["label"] = labels
    return pd.DataFrame(frame), "label"


# derandomized: the same examples every run, so CI never meets a new one by chance (--hypothesis-seed does not
# change derandomized runs: set derandomize=False locally to explore)
def test_random_tables_load_or_fail_cleanly(tmp_path):
    """Garbage tables load or fail in one line; valid ones must load, with the values written, and split."""
    outcome = {"loaded": 0, "refused": 0, "valid": 0}

    @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(tables().map(lambda t: (*t, False)), valid_tables().map(lambda t: (*t, True))),
           st.sampled_from([".csv", ".parquet", "frame"]))
    def check(table: tuple[pd.DataFrame, str, bool], fmt: str) -> None:
        df, label, valid = table
        source: Any = df if fmt == "frame" else tmp_path / f"t{fmt}"
        if fmt != "frame":
            try:
                write(df, source)
            except ValueError:  # pandas refuses to write some frames (duplicate names to Parquet): nothing to read
                assert not valid
                return
        if valid:
            _check_valid(df, label, load_table(source, label))
            outcome["valid"] += 1
        try:
            t = load_table(source, label)
            split = split_table(t)  # a table can load yet be too small to stratify: that is a clean error too
        except InputError as e:
            assert "\n" not in str(e) and not valid
            outcome["refused"] += 1
            return
        _check_success(t, split)
        outcome["loaded"] += 1

    check()
    assert outcome["valid"] >= 10 and outcome["refused"] >= 5, outcome


def _check_valid(df: pd.DataFrame, label: str, t: Any) -> None:
    """The loaded table holds the values written, computed here from the frame."""
    features = [c for c in df.columns if c != label]
    assert t.features == tuple(features) and t.classes == tuple(sorted(set(df[label])))
    np.testing.assert_array_equal(t.x, df[features].to_numpy(np.float64).astype(np.float32))
    np.testing.assert_array_equal(np.array(t.classes)[t.y], df[label].to_numpy())
