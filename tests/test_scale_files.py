"""Streaming file scoring (edgeclf.scale.files): real files in, real files out, compared with the Classifier."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq
import pytest

from edgeclf.runtime import Classifier, InputError
from edgeclf.scale.files import score_files

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "artifacts" / "circles"
N = 3000


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.load(ART)


@pytest.fixture(scope="module")
def table() -> pa.Table:
    """Columns in another order than the features, an extra column, an id to keep; some rows off the domain."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.4, 1.4, (N, 2)).astype(np.float32)  # (N, 2)
    return pa.table({"x2": x[:, 1], "extra": rng.normal(size=N), "id": [f"r{i:05d}" for i in range(N)], "x1": x[:, 0]})


def features(t: pa.Table) -> np.ndarray:
    return np.column_stack([t["x1"].to_numpy(), t["x2"].to_numpy()]).astype(np.float32)  # (N, 2)


def write(t: pa.Table, path: Path) -> Path:
    kind = path.suffix
    if kind == ".csv":
        pcsv.write_csv(t, path)
    elif kind == ".parquet":
        pq.write_table(t, path, row_group_size=700)  # several row groups: batches cross them
    elif kind == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in t.to_pylist()))
    else:
        np.save(path, features(t))
    return path


def read(path: Path) -> pa.Table:
    if path.suffix == ".csv":
        return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types={"id": pa.string()}))
    if path.suffix == ".jsonl":
        return pjson.read_json(path)
    return pq.read_table(path)


def assert_matches(out: pa.Table, x: np.ndarray, clf: Classifier, proba: bool) -> None:
    assert out["label"].to_pylist() == clf.predict(x).tolist()
    if proba:
        p = clf.predict_proba(x)  # (N, 2)
        for j, c in enumerate(clf.classes_):
            got = out[f"proba_{c}"].to_numpy()
            tol = 0 if out.schema.field(f"proba_{c}").type == pa.float32() else 1e-7  # text round-trips float32
            assert np.abs(got - p[:, j]).max() <= tol, c


@pytest.mark.parametrize("src", [".csv", ".parquet", ".jsonl", ".npy"])
@pytest.mark.parametrize("dst", [".csv", ".parquet", ".jsonl"])
def test_every_format_pair_matches_the_classifier(tmp_path, table, clf, src, dst):
    inp = write(table, tmp_path / f"in{src}")
    keep = () if src == ".npy" else ("id",)
    report = score_files(ART, [str(inp)], str(tmp_path / f"out{dst}"), proba=True, keep=keep, batch_rows=512)
    out = read(tmp_path / f"out{dst}")
    x = features(table)
    assert report.rows == N and out.num_rows == N
    assert_matches(out, x, clf, proba=True)
    if keep:
        assert out["id"].to_pylist() == table["id"].to_pylist()  # input order, id passed through
    assert out.column_names[-3:] == ["label", "proba_outer", "proba_inner"]
    assert report.out_of_range == int(clf.out_of_range(x).sum()) > 0  # the training range, as the runtime says


def test_globs_and_lists_keep_input_order_across_files(tmp_path, table, clf):
    parts = [table.slice(0, 1000), table.slice(1000, 1000), table.slice(2000)]
    for i, part in enumerate(parts):
        write(part, tmp_path / f"part{i}.parquet")
    write(parts[0], tmp_path / "first.csv")
    report = score_files(ART, [str(tmp_path / "first.csv"), str(tmp_path / "part*.parquet")], str(tmp_path / "o.csv"),
                         keep=["id"], batch_rows=333)
    out = read(tmp_path / "o.csv")
    assert report.parts == 4 and report.rows == 4000
    assert out["id"].to_pylist() == table["id"].to_pylist()[:1000] + table["id"].to_pylist()
    x = features(table)
    assert out["label"].to_pylist() == clf.predict(np.concatenate([x[:1000], x])).tolist()


def test_no_output_writes_csv_to_stdout(tmp_path, table, clf):
    buf = io.BytesIO()
    score_files(ART, str(write(table, tmp_path / "in.parquet")), stdout=buf)
    out = pcsv.read_csv(io.BytesIO(buf.getvalue()))
    assert out.column_names == ["label"]
    assert_matches(out, features(table), clf, proba=False)


def test_stdin_dash_is_csv(tmp_path, table, clf):
    data = write(table, tmp_path / "in.csv").read_bytes()
    code = "import sys; from edgeclf.scale.files import score_files; score_files(sys.argv[1], ['-'], proba=True)"
    done = subprocess.run([sys.executable, "-c", code, str(ART)], input=data, capture_output=True, check=True)
    assert_matches(pcsv.read_csv(io.BytesIO(done.stdout)), features(table), clf, proba=True)


def test_overwrite_is_refused_unless_asked(tmp_path, table):
    inp, out = str(write(table, tmp_path / "in.parquet")), tmp_path / "out.csv"
    out.write_text("precious\n")
    with pytest.raises(InputError, match="out.csv.*already exists.*overwrite"):
        score_files(ART, inp, str(out))
    assert out.read_text() == "precious\n"
    score_files(ART, inp, str(out), overwrite=True)
    assert read(out).num_rows == N
    assert sorted(os.listdir(tmp_path)) == ["in.parquet", "out.csv"]  # no temp file left beside it


def mid_file_csv(tmp_path: Path, bad_row: int, bad: str, rows: int = 200_000) -> Path:
    """A large CSV (several reader blocks) with one bad line deep inside it."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (rows, 2))  # (rows, 2)
    lines = [f"{a:.6f},{b:.6f}" for a, b in x]
    lines[bad_row] = bad
    path = tmp_path / "big.csv"
    path.write_text("x1,x2\n" + "\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("bad", ["0.5,abc", "0.5,0.1,9", "nan,0.1", "0.5,inf", "0.5,"],
                         ids=["not-a-number", "extra-field", "nan", "inf", "empty"])
def test_a_bad_row_deep_in_a_csv_names_its_line_and_leaves_no_output(tmp_path, bad):
    inp = mid_file_csv(tmp_path, 150_000, bad)
    out = tmp_path / "out.parquet"
    with pytest.raises(InputError) as e:
        score_files(ART, str(inp), str(out), batch_rows=4096)
    msg = str(e.value)
    assert "big.csv line 150,002" in msg.replace("150002", "150,002"), msg  # header is line 1, row 0 is line 2
    assert "\n" not in msg
    assert sorted(os.listdir(tmp_path)) == ["big.csv"]  # neither the output nor its temp file


def test_a_nan_in_a_parquet_file_names_the_global_row(tmp_path, table):
    x = features(table).copy()
    x[2345, 1] = np.nan
    pq.write_table(pa.table({"x1": x[:, 0], "x2": x[:, 1]}), tmp_path / "in.parquet", row_group_size=500)
    with pytest.raises(InputError, match=r"in.parquet row 2,345 \(0-based\).*NaN"):
        score_files(ART, str(tmp_path / "in.parquet"), str(tmp_path / "o.csv"), batch_rows=300)
    assert not (tmp_path / "o.csv").exists()


def test_bad_inputs_are_one_line_errors_naming_the_file(tmp_path, table):
    good = str(write(table, tmp_path / "good.parquet"))
    write(table.drop_columns(["x2"]), tmp_path / "nox2.parquet")
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1" + os.urandom(2000))
    (tmp_path / "data.txt").write_text("x1,x2\n1,2\n")
    (tmp_path / "folder").mkdir()
    labelled = str(write(table.rename_columns(["x2", "extra", "label", "x1"]), tmp_path / "labelled.parquet"))
    cases = [
        ([str(tmp_path / "none*.csv")], "o.csv", {}, "none\\*.csv' matches no file"),
        ([str(tmp_path / "data.txt")], "o.csv", {}, "data.txt: unknown extension '.txt'"),
        ([good, str(tmp_path / "nox2.parquet")], "o.csv", {}, "nox2.parquet has no column 'x2'"),
        ([str(tmp_path / "corrupt.parquet")], "o.csv", {}, "corrupt.parquet is not a readable Parquet file"),
        ([good], "o.csv", {"keep": ["order_id"]}, "--keep column 'order_id' is not in .*good.parquet"),
        ([labelled], "o.csv", {"keep": ["label"]}, "'label' clashes with an output column"),
        ([good], "folder", {}, "output .*folder' is a folder"),
        ([good], "o.xlsx", {}, "unknown extension '.xlsx'"),
        ([str(write(table, tmp_path / "in.npy"))], "o.csv", {"keep": ["id"]}, "a .npy array has no named columns"),
    ]
    for inputs, out, kw, pattern in cases:
        with pytest.raises(InputError, match=pattern) as e:
            score_files(ART, inputs, str(tmp_path / out), **kw)
        assert "\n" not in str(e.value)
        assert not (tmp_path / "o.csv").exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_the_runtime_import_stays_free_of_pyarrow_and_scoring_stays_free_of_pandas(tmp_path, table):
    inp = write(table, tmp_path / "in.csv")
    code = (
        "import sys; from edgeclf.runtime import Classifier; assert 'pyarrow' not in sys.modules, 'pyarrow'\n"
        "from edgeclf.scale.files import score_files\n"
        f"score_files({str(ART)!r}, [{str(inp)!r}], {str(tmp_path / 'o.jsonl')!r}, proba=True, keep=['id'])\n"
        "assert 'pandas' not in sys.modules, 'pandas'  # +0.5 s of start-up for one row"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


MEMORY_SCRIPT = """
import sys
from edgeclf.scale.files import score_files
score_files(sys.argv[1], [sys.argv[2]], sys.argv[3], proba=True)
print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])
"""


@pytest.mark.slow
@pytest.mark.parametrize("fmt", [".csv", ".parquet"])
def test_memory_stays_bounded_on_a_large_file(tmp_path, fmt):
    rows = 2_000_000
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (rows, 2))  # (rows, 2) float64: the CSV holds 17-digit numbers, ~80 MB
    t = pa.table({"x1": x[:, 0], "x2": x[:, 1], "id": np.arange(rows)})
    inp = tmp_path / f"in{fmt}"
    pcsv.write_csv(t, inp) if fmt == ".csv" else pq.write_table(t, inp)
    out = tmp_path / f"out{fmt}"
    done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(ART), str(inp), str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.strip()) / 1024
    assert read(out).num_rows == rows
    # whole-file reading would hold the input (~80 MB of text, 48 MB of columns) and the output many times over
    assert peak_mb < 400, f"peak RSS {peak_mb:.0f} MB"


def cli_group():
    """The predict command inside edgeclf's own group class (which turns InputError into a one-line exit 1)."""
    from edgeclf.cli.main import CleanErrors
    from edgeclf.cli.predict import predict

    return CleanErrors(commands={"predict": predict})


def test_the_predict_command(tmp_path, table, clf):
    from click.testing import CliRunner

    inp, out = write(table, tmp_path / "in.parquet"), tmp_path / "o.csv"
    args = ["predict", str(ART), str(inp), "--output", str(out), "--keep", "id", "--proba", "--quiet"]
    r = CliRunner().invoke(cli_group(), args)
    assert r.exit_code == 0, r.output
    assert f"scored {N:,} rows from 1 part(s)" in r.stderr and "outside the training range" in r.stderr
    assert_matches(read(out), features(table), clf, proba=True)
    r = CliRunner().invoke(cli_group(), args)  # again: the output exists now
    assert r.exit_code == 1 and "already exists" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli_group(), ["predict", str(ART), str(write(table, tmp_path / "in.csv"))])
    assert r.exit_code == 0
    assert_matches(pcsv.read_csv(io.BytesIO(r.stdout_bytes)), features(table), clf, proba=False)
    r = CliRunner().invoke(cli_group(), ["predict", str(ART), str(inp), "--scheduler", "tcp://127.0.0.1:1"])
    assert r.exit_code == 2 and "--engine dask" in r.output


@pytest.mark.parametrize("dst", [".csv", ".jsonl", ".parquet"])
def test_awkward_kept_text_round_trips(tmp_path, dst):
    names = ['plain', 'a,comma', 'a "quote"', 'back\\slash', 'tab\tand\nnewline', 'ctrl\x01', 'ünï', '']
    t = pa.table({"name": names, "x1": np.zeros(len(names), np.float32), "x2": np.ones(len(names), np.float32)})
    pq.write_table(t, tmp_path / "in.parquet")
    score_files(ART, str(tmp_path / "in.parquet"), str(tmp_path / f"out{dst}"), keep=["name"])
    if dst == ".csv":
        opts = pcsv.ConvertOptions(column_types={"name": pa.string()}, strings_can_be_null=False)
        got = pcsv.read_csv(tmp_path / "out.csv", parse_options=pcsv.ParseOptions(newlines_in_values=True),
                            convert_options=opts)
    else:
        got = read(tmp_path / f"out{dst}")
    assert got["name"].to_pylist() == names


def test_progress_line_shows_rows_rate_and_eta(capsys):
    from edgeclf.scale.progress import Progress
    from edgeclf.tables.sources import Source

    parquet = Source("a.parquet", "parquet", pa.schema([]), 1000, False)
    bar = Progress([parquet, parquet], enabled=True)
    bar.update(1000, None)
    bar.next_file()
    bar.close()
    line = capsys.readouterr().err.strip().split("\r")[-1]
    assert "1,000 rows" in line and "M rows/s" in line and "50%" in line and "ETA 0:00:0" in line

def test_progress_line_on_stdin_has_no_eta(capsys, monkeypatch):
    from edgeclf.scale import progress
    from edgeclf.tables.sources import Source

    monkeypatch.setattr(progress, "REFRESH_S", 0.0)  # every update draws the line
    text = Source("a.csv", "csv", pa.schema([]), None, True)  # stdin: no size, so no fraction and no ETA
    bar = progress.Progress([text], enabled=True)
    bar.update(1000, 5000)  # bytes read, as the CSV reader reports them
    bar.close()
    lines = [x for x in capsys.readouterr().err.split("\r") if x.strip()]
    assert len(lines) == 2 and all("1,000 rows" in x and "M rows/s" in x for x in lines), lines
    assert not any("ETA" in x or "%" in x for x in lines), lines


@pytest.mark.parametrize("classes", [2, 3])
def test_winners_is_argmax_and_a_tie_keeps_the_first_class(classes):
    from edgeclf.runtime.classifier import winners

    p = np.random.default_rng(4).random((5000, classes)).astype(np.float32)  # (N, C)
    p[::5, 1] = p[::5, 0]  # ties
    p[1::5] = 0.5
    assert winners(p).dtype == np.int32
    np.testing.assert_array_equal(winners(p), p.argmax(axis=1))


def test_progress_rate_never_reads_zero_millions():
    from edgeclf.scale.progress import _rate

    assert _rate(12.0).strip() == "12 rows/s" and _rate(99_999).strip() == "99,999 rows/s"
    assert _rate(3_400_000).strip() == "3.40 M rows/s"
