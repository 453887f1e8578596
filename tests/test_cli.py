"""The CLI: help everywhere, predict in every format and input kind, info, errors, no torch on the predict path."""

from __future__ import annotations

import csv
import io
import json
import shutil

import click
import numpy as np
import pytest
from helpers import ARTIFACTS, BLOCKER, assert_clean_error, python, run_cli

from edgeclf.cli.main import cli
from edgeclf.runtime import Classifier

POINTS = np.array([[0.0, 0.1], [1.0, 0.0], [-0.2, 0.3], [0.05, -1.02]], np.float32)


def commands():
    return sorted(cli.commands)


@pytest.mark.parametrize("name", commands())
def test_every_command_has_help_with_example(name):
    res = run_cli(name, "--help")
    assert res.exit_code == 0
    assert "Example:" in res.output and f"edgeclf {name}" in res.output
    assert cli.commands[name].help and len(cli.commands[name].help.split("\n")[0]) > 20


def test_top_level_help():
    res = run_cli("--help")
    assert res.exit_code == 0 and "Example:" in res.output
    assert set(commands()) >= {"train", "export", "verify", "run", "predict", "info"}


@pytest.fixture(scope="module")
def expected():
    clf = Classifier.load(ARTIFACTS / "circles")
    return clf.predict(POINTS), clf.predict_proba(POINTS)


def csv_text(header: bool = True, sep: str = ",") -> str:
    lines = ([sep.join(["x1", "x2"])] if header else []) + [sep.join(repr(float(v)) for v in row) for row in POINTS]
    return "\n".join(lines) + "\n"


def test_predict_csv_stdin_with_proba(expected):
    res = run_cli("predict", ARTIFACTS / "circles", "-", "--proba", input=csv_text())
    assert res.exit_code == 0, res.output
    rows = list(csv.reader(io.StringIO(res.stdout)))
    assert rows[0] == ["label", "proba_outer", "proba_inner"]
    assert [r[0] for r in rows[1:]] == list(expected[0])
    assert np.array_equal(np.array([[float(v) for v in r[1:]] for r in rows[1:]], np.float32), expected[1])
    assert "scored 4 rows" in res.stderr and "0 row(s) outside the training range" in res.stderr


def test_predict_jsonl_and_parquet_outputs(expected, tmp_path):
    import pyarrow.parquet as pq

    src = tmp_path / "in.csv"
    src.write_text(csv_text())
    for out in (tmp_path / "p.jsonl", tmp_path / "p.parquet"):
        res = run_cli("predict", ARTIFACTS / "circles", src, "--proba", "--output", out)
        assert res.exit_code == 0, res.output
        recs = ([json.loads(ln) for ln in out.read_text().splitlines()] if out.suffix == ".jsonl"
                else pq.read_table(out).to_pylist())
        assert [r["label"] for r in recs] == list(expected[0])
        assert np.allclose([[r["proba_outer"], r["proba_inner"]] for r in recs], expected[1])


def test_predict_npy_and_output_file(expected, tmp_path):
    np.save(tmp_path / "in.npy", POINTS.astype(np.float64))
    out = tmp_path / "out.csv"
    res = run_cli("predict", ARTIFACTS / "circles", tmp_path / "in.npy", "--output", out)
    assert res.exit_code == 0 and res.stdout == ""
    assert out.read_text().splitlines() == ["label"] + list(expected[0])


@pytest.mark.parametrize("variant", ["bom", "blank-lines", "crlf", "reordered", "header-only"])
def test_predict_csv_variants(variant, expected):
    text = {
        "bom": "\ufeff" + csv_text(), "blank-lines": "\n" + csv_text().replace("\n", "\n\n"),
        "crlf": csv_text().replace("\n", "\r\n"), "header-only": "x1,x2\n",
        "reordered": "id,x2,x1\n" + "".join(f"{i},{b!r},{a!r}\n" for i, (a, b) in enumerate(POINTS.tolist())),
    }[variant]
    res = run_cli("predict", ARTIFACTS / "circles", "-", input=text.encode())
    assert res.exit_code == 0, res.output
    labels = res.stdout.splitlines()[1:]
    assert labels == ([] if variant == "header-only" else list(expected[0]))


@pytest.mark.parametrize("text,fragments", [
    ("x1,x2\n0.1,0.2\n0.3,abc\n", ["line 3", "column 'x2'", "value 'abc' is not a number"]),
    ("x1,x2\n0.1,0.2\n0.3\n", ["line 3 has 1 cells where the header has 2"]),
    ("a,b\n0.1,0.2\n", ["no column 'x1'", "expected the features x1, x2 (found a, b)"]),
    ("0.1,0.2\n", ["first line (0.1, 0.2) is all numbers", "header line", "such as: x1,x2"]),
    ("x1,x2\n0.1,inf\n", ["line 2", "NaN or inf", "'x2'"]),
    ("", ["empty CSV file", "such as: x1,x2"]),
], ids=["not-a-number", "short-row", "wrong-header", "no-header", "inf", "empty"])
def test_predict_bad_csv(text, fragments):
    assert_clean_error(run_cli("predict", ARTIFACTS / "circles", "-", input=text), 1, *fragments)


def test_predict_bad_row_in_a_file_names_the_line(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("x1,x2\n" + "0.1,0.2\n" * 5000 + "0.3,abc\n" + "0.1,0.2\n" * 10)
    assert_clean_error(run_cli("predict", ARTIFACTS / "circles", src, "--output", tmp_path / "o.csv"), 1,
                       "in.csv line 5,002", "abc")
    assert not (tmp_path / "o.csv").exists()


def test_predict_missing_input_and_bad_folder(tmp_path):
    assert_clean_error(run_cli("predict", ARTIFACTS / "circles", tmp_path / "nope.csv"), 1, "nope.csv")
    assert_clean_error(run_cli("predict", tmp_path, "-", input="x1,x2\n0,0\n"), 1, "no manifest.json")
    assert_clean_error(run_cli("predict", ARTIFACTS / "circles", tmp_path / "a.xml"), 1, "'.xml'")


def test_predict_output_failure_keeps_existing_file(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("previous\n")
    assert_clean_error(run_cli("predict", ARTIFACTS / "circles", "-", "--output", out, "--overwrite",
                               input="x1,x2\n0,zz\n"), 1, "zz")
    assert out.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    assert_clean_error(run_cli("predict", ARTIFACTS / "circles", "-", "--output", out, input="x1,x2\n0,0\n"), 1,
                       "exists", "--overwrite")


def test_info(tmp_path):
    res = run_cli("info", ARTIFACTS / "blobs")
    assert res.exit_code == 0, res.output
    test_acc = json.loads((ARTIFACTS / "blobs" / "metrics.json").read_text())["test_accuracy"]
    for fragment in ["blobs (multiclass, 4 classes)", "blob0, blob1, blob2, blob3", "x1, x2", "1, 64, 1024, 4096, 16384",
                     "model.pt2", "torch.export", "PASS", f"test {test_acc:.2%}"]:
        assert fragment in res.output, fragment
    assert_clean_error(run_cli("info", tmp_path), 1, "no manifest.json")


def test_predict_and_info_import_no_torch(tmp_path):
    folder = tmp_path / "moons"
    shutil.copytree(ARTIFACTS / "moons", folder)
    (tmp_path / "in.csv").write_text("x1,x2\n0.0,1.0\n1.0,-0.5\n")
    for args in ([str(folder), str(tmp_path / "in.csv"), "--proba"], [str(folder)]):
        cmd = "predict" if len(args) > 1 else "info"
        code = BLOCKER + f"""
from edgeclf.cli.main import cli
try:
    cli([{cmd!r}, *{args!r}], prog_name="edgeclf", standalone_mode=False)
finally:
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
    assert not heavy, heavy
"""
        p = python("-c", code)
        assert p.returncode == 0, p.stderr
        assert ("upper" in p.stdout) if cmd == "predict" else ("moons (binary" in p.stdout)


def test_training_commands_say_which_extra_when_torch_missing():
    code = BLOCKER + """
from edgeclf.cli.main import cli
cli(["export", "circles"], prog_name="edgeclf")
"""
    p = python("-c", code)
    assert p.returncode == 1 and "pip install 'edgeclf[train]'" in p.stderr and "Traceback" not in p.stderr


def test_table_helper():
    from edgeclf.report.text import table

    assert table([("a", 1)], ["x", "yy"]).splitlines() == ["x  yy", "-  --", "a  1"]


def test_error_group_turns_oserror_into_one_line():
    from edgeclf.cli.main import CleanErrors

    @click.group(cls=CleanErrors)
    def g():
        pass

    @g.command()
    def boom():
        raise PermissionError(13, "Permission denied", "/x")

    from click.testing import CliRunner

    res = CliRunner().invoke(g, ["boom"])
    assert res.exit_code == 1 and "Permission denied: /x" in res.output and "Traceback" not in res.output
