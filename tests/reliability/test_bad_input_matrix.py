"""The bad-input matrix: one table, API and CLI. Each case: exact error class or exit code, the message names the
offending value, no traceback. Then the tricky-but-valid inputs, which must give the contiguous results."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import ARTIFACTS, ROOT, assert_clean_error, run_cli

from edgeclf.runtime import ArtifactError, Classifier, InputError

CIRCLES = ARTIFACTS / "circles"

# (id, input, error class, fragments the message must contain)
API_CASES = [
    ("features-3", np.zeros((4, 3)), InputError, ["(4, 3)", "(N, 2)"]),
    ("features-1", np.zeros((4, 1)), InputError, ["(4, 1)"]),
    ("single-row-3", [1.0, 2.0, 3.0], InputError, ["(3,)"]),
    ("0-d", np.float64(1.5), InputError, ["shape ()"]),
    ("3-d", np.zeros((2, 2, 2)), InputError, ["(2, 2, 2)"]),
    ("empty-1d", [], InputError, ["(0,)"]),
    ("ragged", [[1.0, 2.0], [3.0]], InputError, ["rectangular"]),
    ("object", np.array([[1.0, None]], dtype=object), InputError, ["object"]),
    ("str", np.array([["1", "2"]]), InputError, ["<U1", "strings"]),
    ("bytes", np.array([[b"1", b"2"]]), InputError, ["|S1", "bytes"]),
    ("bool", np.array([[True, False]]), InputError, ["bool"]),
    ("complex", np.array([[1j, 0]]), InputError, ["complex"]),
    ("none", None, InputError, ["object"]),
    ("dict", {"x1": 1.0}, InputError, ["object"]),
    ("float64-overflow", np.array([[0.0, 0.0], [3.5e38, 1.0]]), InputError, ["3.5e+38", "row(s) 1", "float32"]),
    ("float64-neg-overflow", np.array([[-1e300, 0.0]]), InputError, ["-1e+300", "float32"]),
    ("nan", np.array([[0.0, 0.0], [0.0, np.nan]]), InputError, ["NaN or inf", "row(s) 1"]),
    ("inf", np.array([[np.inf, 0.0]], np.float32), InputError, ["row(s) 0"]),
    ("neg-inf-many", np.tile([[0.0, -np.inf]], (8, 1)), InputError, ["row(s) 0, 1, 2, 3, 4 and 3 more"]),
    ("nan-big", np.vstack([np.zeros((9999, 2)), [[np.nan, 0]]]).astype(np.float32), InputError, ["row(s) 9999"]),
    ("frame-missing", pd.DataFrame({"x1": [1.0]}), InputError, ["no column 'x2'"]),
    ("frame-duplicate", pd.DataFrame([[1.0, 1.0, 0.0]], columns=["x1", "x2", "x2"]), InputError, ["'x2' twice"]),
    ("frame-str", pd.DataFrame({"x1": [1.0], "x2": ["a"]}), InputError, ["'x2'", "expected numbers"]),
    ("frame-bool", pd.DataFrame({"x1": [1.0], "x2": [True]}), InputError, ["'x2'", "bool"]),
]


@pytest.fixture(scope="module")
def clf():
    return Classifier.load(CIRCLES)


@pytest.mark.parametrize("x,error,fragments", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_bad_input(x, error, fragments, clf):
    check_api_case(clf, x, error, fragments)


def check_api_case(clf, x, error, fragments) -> None:
    with pytest.raises(error) as err:
        clf.predict_proba(x)
    assert type(err.value) is error and isinstance(err.value, ValueError)
    assert "\n" not in str(err.value)
    for f in fragments:
        assert f in str(err.value), str(err.value)


def _files(tmp_path):
    (tmp_path / "bin.csv").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "latin1.csv").write_bytes("x1,x2\n0,0\n\xe9,1\n".encode("latin-1"))
    np.save(tmp_path / "three.npy", np.zeros((2, 3)))
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    np.save(tmp_path / "objects.npy", np.array([[1, None]], dtype=object), allow_pickle=True)
    (tmp_path / "fake.npy").write_bytes(b"not numpy")
    (tmp_path / "bad.csv").write_text("x1,x2\n1,2\n3,four\n")


# (id, argv after 'predict', stdin, exit code, fragments)
CLI_CASES = [
    ("csv-bad-value", [CIRCLES, "-"], "x1,x2\n1,2\n3,four\n", 1, ["line 3", "'x2'", "'four' is not a number"]),
    ("csv-bad-value-file", [CIRCLES, "{tmp}/bad.csv"], None, 1, ["bad.csv line 3", "'four'"]),
    ("csv-short-row", [CIRCLES, "-"], "x1,x2\n1,2\n3\n", 1, ["line 3 has 1 cells where the header has 2"]),
    ("csv-long-row", [CIRCLES, "-"], "x1,x2\n1,2,3\n", 1, ["line 2 has 3 cells where the header has 2"]),
    ("csv-wrong-header", [CIRCLES, "-"], "a,b\n1,2\n", 1, ["no column 'x1'", "found a, b"]),
    ("csv-no-header", [CIRCLES, "-"], "1,2\n", 1, ["all numbers", "header line", "such as: x1,x2"]),
    ("csv-nan", [CIRCLES, "-"], "x1,x2\n1,2\nnan,1\n", 1, ["line 3", "'x1'"]),
    ("csv-overflow", [CIRCLES, "-"], "x1,x2\n1e40,1\n", 1, ["line 2", "beyond float32", "'x1'"]),
    ("csv-empty", [CIRCLES, "-"], "", 1, ["empty CSV file", "such as: x1,x2"]),
    ("csv-binary", [CIRCLES, "{tmp}/bin.csv"], None, 1, ["bin.csv: not a text CSV (byte 0x00 at offset 0)"]),
    ("csv-latin1", [CIRCLES, "{tmp}/latin1.csv"], None, 1, ["latin1.csv line 3"]),
    ("npy-3-features", [CIRCLES, "{tmp}/three.npy"], None, 1, ["(2, 3)"]),
    ("npy-3d", [CIRCLES, "{tmp}/cube.npy"], None, 1, ["(2, 2, 2)"]),
    ("npy-pickled-objects", [CIRCLES, "{tmp}/objects.npy"], None, 1, ["not a readable .npy"]),
    ("npy-garbage", [CIRCLES, "{tmp}/fake.npy"], None, 1, ["not a readable .npy"]),
    ("missing-input", [CIRCLES, "{tmp}/nope.csv"], None, 1, ["nope.csv", "does not exist"]),
    ("unknown-extension", [CIRCLES, "{tmp}/in.xml"], None, 1, ["unknown extension '.xml'"]),
    ("folder-without-manifest", ["{tmp}", "-"], "x1,x2\n1,2\n", 1, ["no manifest.json"]),
    ("output-in-missing-folder", ["--output", "{tmp}/no/such/out.csv", "-"], "x1,x2\n1,2\n", 1, ["does not exist"]),
    ("missing-folder-arg", [], None, 2, ["Missing argument"]),
    ("folder-does-not-exist", ["{tmp}/nowhere", "-"], None, 2, ["nowhere", "does not exist"]),
]


@pytest.mark.parametrize("argv,stdin,code,fragments", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(argv, stdin, code, fragments, tmp_path):
    check_cli_case(argv, stdin, code, fragments, tmp_path)


def check_cli_case(argv, stdin, code, fragments, tmp_path) -> None:
    tmp_path.mkdir(exist_ok=True)
    _files(tmp_path)
    args = [str(a).replace("{tmp}", str(tmp_path)) for a in argv]
    if args and args[0].startswith("--"):
        args = [str(CIRCLES), *args]
    res = run_cli("predict", *args, input=stdin)
    assert_clean_error(res, code, *[f.replace("{tmp}", str(tmp_path)) for f in fragments])


def test_matrix_size_is_what_the_docs_claim(clf, tmp_path):
    """docs/reliability.md states the matrix's size and its "N/N passed": the tables hold exactly that many
    distinct cases, and running every one of them here gives that many passes."""
    doc = (ROOT / "docs" / "reliability.md").read_text()
    row = next(line for line in doc.splitlines() if "test_bad_input_matrix.py" in line)
    api, cli = map(int, re.search(r"(\d+) API cases \+ (\d+) CLI cases", row).groups())
    passed, total = map(int, re.search(r"\*\*(\d+)/(\d+)\*\*", row).groups())
    assert (len(API_CASES), len(CLI_CASES)) == (api, cli)
    runs = [_passes(check_api_case, clf, *c[1:]) for c in API_CASES]
    runs += [_passes(check_cli_case, *c[1:], tmp_path / c[0]) for c in CLI_CASES]
    assert (passed, total) == (sum(runs), len(runs)), [c[0] for c, ok in zip(API_CASES + CLI_CASES, runs) if not ok]
    ids = [c[0] for c in API_CASES + CLI_CASES]
    assert len(set(ids)) == len(ids)  # no case counted twice


def _passes(check, *args) -> bool:
    try:
        check(*args)
    except (AssertionError, pytest.fail.Exception):  # a failed assert, or pytest.raises that saw no error
        return False
    return True


def test_tricky_valid_inputs_match_contiguous(clf):
    x = np.random.default_rng(0).uniform(-1.2, 1.2, (5000, 2)).astype(np.float32)
    expect = clf.predict_proba(x)
    wide = np.zeros((5000, 4), np.float32)
    wide[:, ::2] = x
    cases = {
        "fortran": (np.asfortranarray(x), expect),
        "non-contiguous": (wide[:, ::2], expect),
        "negative-strides": (x[::-1], expect[::-1]),
        "every-other-row": (x[::2], expect[::2]),
        "float64": (x.astype(np.float64), expect),
        "frame-reordered": (pd.DataFrame({"x2": x[:, 1], "x1": x[:, 0]}), expect),
        "list": (x[:10].tolist(), expect[:10]),
        "empty": (np.zeros((0, 2)), expect[:0]),
    }
    for name, (inp, want) in cases.items():
        assert np.array_equal(clf.predict_proba(inp), want), name


def test_cli_stdin_closed_early():
    """No input at all (stdin closed): no header to match features by name, so a clean error."""
    p = subprocess.run([sys.executable, "-m", "edgeclf.cli", "predict", str(CIRCLES), "-"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True)
    assert p.returncode == 1 and "empty CSV file" in p.stderr and "Traceback" not in p.stderr


def test_cli_stdin_cut_mid_line():
    p = subprocess.run([sys.executable, "-m", "edgeclf.cli", "predict", str(CIRCLES), "-"], input="x1,x2\n0.1,0.2\n0.3,",
                       capture_output=True, text=True)
    assert p.returncode == 1 and "line 3" in p.stderr and "Traceback" not in p.stderr


def test_cli_stdout_closed_early(tmp_path):
    """`edgeclf predict ... | head -1`: the reader leaves; no traceback, no hang."""
    np.save(tmp_path / "big.npy", np.zeros((200_000, 2), np.float32))
    p = subprocess.Popen([sys.executable, "-m", "edgeclf.cli", "predict", str(CIRCLES), str(tmp_path / "big.npy")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline() == b"label\n"
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) in (0, 1) and "Traceback" not in err


def test_library_error_types_are_builtin_subclasses():
    assert issubclass(InputError, ValueError) and issubclass(ArtifactError, RuntimeError)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("command", ["predict", "train"])
def test_random_bytes_named_csv_give_one_line(tmp_path, command, seed):
    """Bytes that are no text: one line on stderr naming the file (no raw bytes echoed, no pyarrow callback
    traceback, no abort from a reader thread alive at exit)."""
    data = np.random.default_rng(seed).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    if seed == 2:  # no control character: only the share of bytes that are not UTF-8 tells
        data = bytes(b for b in data if b >= 32)
    path = tmp_path / "random.csv"
    path.write_bytes(data)
    args = [str(CIRCLES), str(path)] if command == "predict" else ["--data", str(path), "--label", "y", "--out",
                                                                   str(tmp_path / "out"), "--quiet"]
    p = subprocess.run([sys.executable, "-m", "edgeclf.cli", command, *args], capture_output=True)
    err = p.stderr.decode("utf-8")  # raises if raw bytes were echoed
    assert p.returncode == 1, err
    assert len(err.splitlines()) == 1 and "not a text CSV" in err and "random.csv" in err, err
