"""The small-input path of `edgeclf predict` (edgeclf.scale.small: csv module + numpy, no pyarrow) against the
streaming path (edgeclf.scale.files, pyarrow) on the same inputs: the same bytes out, the same errors."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from edgeclf.runtime import InputError
from edgeclf.scale.files import score_files
from edgeclf.scale.local import score_local
from edgeclf.scale.small import NULLS, SMALL_BYTES, Unsupported, float_texts, score_small

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "artifacts" / "circles"


def generated(n: int = 2000) -> bytes:
    """pyarrow's own CSV of an id, the features in another order, extra columns, some rows off the domain."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.4, 1.4, (n, 2)).astype(np.float32)  # (n, 2)
    t = pa.table({"x2": x[:, 1], "note": [f'n "{i}", ok' for i in range(n)], "id": [f"{i:05d}" for i in range(n)],
                  "x1": x[:, 0], "extra": rng.normal(size=n)})
    buf = io.BytesIO()
    pcsv.write_csv(t, buf)
    return buf.getvalue()


HAND = {
    "quoted": b'id,x1,x2,other\n"a,b",0.5,-0.25,x\n"c""d","0.1"," 0.2 "\t,y\ne"f,1e-3,+.5,z\n"",-0,1.,\n',
    "crlf": b"x1,x2,id\r\n0.1,0.2,a\r\n-0.9,0.9,b\r\n0.3,-0.4,c",  # no line end after the last row
    "blank-lines-bom": b"\xef\xbb\xbf\n\nid,x2,x1\n\n7,0.25,0.5\n\n8,1E-7,-1.25e+0\n\n",
    "unicode-extra-columns": "name,x1,z,x2\nünï,0.7,ignored,0.1\n日本,-0.2,9,0.3\n".encode(),
    "duplicate-header": b"x1,x2,x1,id\n0.1,0.2,-0.9,i\n",
    "header-only": b"id,x1,x2\n",
    "long-decimals": b"id,x1,x2\nq,0.10000000149011611938953125,1.000000059604644775390625000001\n"
                     b"r,0.333333333333333333333333333,-0.99999999999999999999\n",
    "many-digits": b"id,x1,x2\n" + b"".join(f"{i},{v:.17g},{-v / 3:.9e}\n".encode()
                                            for i, v in enumerate(np.linspace(-1.1, 1.1, 301))),
}


def inputs(tmp_path: Path) -> dict[str, Path]:
    files = {name: tmp_path / f"{name}.csv" for name in [*HAND, "generated"]}
    for name, path in files.items():
        path.write_bytes(HAND[name] if name in HAND else generated())
    return files


OPTIONS = {"labels": {}, "proba": {"proba": True}, "keep-id": {"keep": ["id"], "proba": True},
           "keep-a-feature": {"keep": ["x2"]}}


def stdout_of(fn, *args, **kw) -> bytes:
    buf = io.BytesIO()
    fn(ART, *args, stdout=buf, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("option", OPTIONS)
def test_both_paths_write_the_same_bytes(tmp_path, option):
    kw = OPTIONS[option]
    compared = []
    for name, path in inputs(tmp_path).items():
        line = next(line for line in path.read_bytes().lstrip(b"\xef\xbb\xbf").splitlines() if line)
        header = next(csv.reader([line.decode()]))  # pyarrow quotes every name: "x2","note","id",...
        if not set(kw.get("keep", [])) <= set(header):
            # a kept column the input lacks: every path refuses it with the same message
            messages = {_refusal(fn, path, kw) for fn in (score_files, score_small, score_local)}
            assert len(messages) == 1 and "id" in messages.pop(), (name, messages)
            continue
        compared.append(name)
        streamed = stdout_of(score_files, [str(path)], **kw)
        assert stdout_of(score_small, [str(path)], **kw) == streamed, name
        assert stdout_of(score_local, [str(path)], **kw) == streamed, name
        score_files(ART, [str(path)], str(tmp_path / "a.csv"), overwrite=True, **kw)
        score_small(ART, [str(path)], str(tmp_path / "b.csv"), overwrite=True, **kw)
        assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes() == streamed, name
    lacking = {"keep-id": {"unicode-extra-columns"}}.get(option, set())
    assert set(compared) == {*HAND, "generated"} - lacking, compared


def _refusal(fn, path: Path, kw: dict) -> str:
    with pytest.raises(InputError) as err:
        stdout_of(fn, [str(path)], **kw)
    return str(err.value)


def test_several_inputs_and_stdin_give_the_same_bytes(tmp_path):
    files = inputs(tmp_path)
    data = files["generated"].read_bytes()
    names = [str(files["generated"]), "-", str(files["quoted"])]
    kw = {"keep": ["id"], "proba": True}
    streamed = stdout_of(score_files, names, stdin=io.BytesIO(data), **kw)
    assert stdout_of(score_small, names, stdin=data, **kw) == streamed
    assert stdout_of(score_local, names, stdin=io.BytesIO(data), **kw) == streamed
    assert streamed.count(b"\n") == 1 + 2 * 2000 + 4


def test_stdin_beyond_the_small_size_streams_with_pyarrow(tmp_path):
    """More than SMALL_BYTES on stdin: the bytes already read and the rest reach pyarrow's reader, none lost."""
    data = b"x1,x2\n" + b"0.125,-0.5\n" * (SMALL_BYTES // 11 + 5000)
    code = ("import sys; from edgeclf.scale.local import score_local; score_local(sys.argv[1], ['-'], proba=True)\n"
            "print('pyarrow' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(ART)], input=data, capture_output=True, check=True)
    assert done.stderr.strip().splitlines()[-1] == b"True"
    assert done.stdout == stdout_of(score_files, ["-"], stdin=io.BytesIO(data), proba=True)
    assert done.stdout.count(b"\n") == 1 + SMALL_BYTES // 11 + 5000


BAD = {  # edgeclf's own words in both paths: no pyarrow message reaches the user
    "not-a-number": (b"id,x2,x1\na,0.1,0.2\nb,0.3,abc\n", "line 3: column 'x1': value 'abc' is not a number"),
    "padded-null": (b"x1,x2\n0.1, NA\n", "line 2: column 'x2': value 'NA' is not a number"),
    "unicode-digit": ("x1,x2\n0.1,１\n".encode(), "line 2: column 'x2': value '１' is not a number"),
    "too-few-fields": (b"x1,x2\n0.1,0.2\n\n0.3\n", "line 3 has 1 cells where the header has 2$"),
    "too-many-fields": (b"x1,x2\n0.1,0.2,\n", "line 2 has 3 cells where the header has 2$"),
    "long-bad-row": (b"x1,x2\n1,2,3" + b"4" * 300 + b"\n", "line 2 has 3 cells where the header has 2$"),
    "missing-column": (b"x1,y\n0.1,0.2\n", "has no column 'x2': expected the features x1, x2 \\(found x1, y\\)$"),
    "missing-kept-column": (b"x1,x2\n0.1,0.2\n", "--keep column 'id' is not in .*in.csv \\(columns: x1, x2\\)$"),
    "missing-kept-output-name": (b"x1,x2\n0.1,0.2\n", "--keep column 'label' is not in"),
    "no-header": (b"0.1,0.2\n0.3,0.4\n", "the first line \\(0.1, 0.2\\) is all numbers: expected a header line naming "
                                      "the columns, such as: x1,x2$"),
    "binary": (bytes(range(256)), "not a text CSV \\(byte 0x00 at offset 0\\)"),
    "nan": (b"x1,x2\n0.1,0.2\nNAN,0.3\n", "line 3: NaN or inf .* column 'x1'"),
    "inf": (b"x1,x2\n0.1,-inf\n", "line 2: NaN or inf .* column 'x2'"),
    "beyond-float32": (b"x1,x2\n0.1,3.5e38\n", "line 2: NaN or inf .* column 'x2'"),
    "empty-value": (b"x1,x2\n0.1,0.2\n0.3,\n", "line 3: feature 'x2' is empty"),
    "null-word": (b"x1,x2\nnull,0.2\n", "line 2: feature 'x1' is empty"),
    "empty-file": (b"", "is an empty CSV file: expected a header line naming the columns, such as: x1,x2$"),
    "blank-file": (b"\n\n", "is an empty CSV file"),
    "quoted-line-break": (b'x1,x2\n"0.1\n",0.2\n', "line 2: column 'x1': value '0.1\\\\n' is not a number"),
}
JARGON = ("include_columns", "CSV parse error", "conversion error", "In CSV column", "Empty CSV")


@pytest.mark.parametrize("case", BAD)
def test_bad_inputs_give_the_same_one_line_error_in_both_paths(tmp_path, case):
    data, pattern = BAD[case]
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    keep = {"missing-kept-column": ["id"], "missing-kept-output-name": ["label"]}.get(case, [])
    errors = []
    for fn in (score_files, score_small, score_local):
        with pytest.raises((InputError, Unsupported)) as e:
            fn(ART, [str(path)], str(tmp_path / "out.csv"), keep=keep)
        errors.append(e.value)
    files_error, small_error, local_error = errors
    assert isinstance(files_error, InputError) and isinstance(local_error, InputError)
    assert str(local_error) == str(files_error)
    assert isinstance(small_error, Unsupported) if case in ("empty-file", "blank-file") else \
        str(small_error) == str(files_error)
    assert "\n" not in str(files_error)
    assert re.search(pattern, str(files_error)), str(files_error)
    assert not any(j in str(files_error) for j in JARGON), str(files_error)
    assert sorted(os.listdir(tmp_path)) == ["in.csv"]  # no output, no temp file


def test_what_the_csv_module_cannot_mirror_goes_to_pyarrow(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,x1,x2\ncafé,0.1,0.2\n".encode("latin-1"))
    with pytest.raises(Unsupported):
        score_small(ART, [str(path)])
    with pytest.raises(InputError) as a:
        score_files(ART, [str(path)], keep=["name"], stdout=io.BytesIO())
    with pytest.raises(InputError) as b:
        score_local(ART, [str(path)], keep=["name"], stdout=io.BytesIO())
    assert str(a.value) == str(b.value)


def test_one_row_from_stdin_never_imports_pyarrow():
    code = ("import sys\nsys.argv = ['edgeclf', 'predict', sys.argv[1], '-', '--proba']\n"
            "from edgeclf.cli.main import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pyarrow', 'pandas', 'torch', 'dask'})\n"
            "print('heavy:', heavy, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(ART)], input=b"x1,x2\n0.1,0.2\n", capture_output=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"label,proba_outer,proba_inner\ninner,")
    assert b"heavy: []" in done.stderr, done.stderr


@pytest.mark.parametrize("case", ["ok", "to-file", "bad-input", "dask-usage"])
def test_console_skips_the_teardown_only_after_a_published_predict(case, tmp_path):
    """`edgeclf` (console) ends a finished local predict with os._exit: the atexit handlers still run and the
    output is complete, but objects are not torn down (a __del__ does not print). Errors end the same way, with
    their exit code (a teardown after an error could abort on a C++ thread pool winding down: exit 134)."""
    out_file = ["-o", str(tmp_path / "p.csv")]
    args = {"ok": ["-", "--proba"], "to-file": ["-", *out_file], "bad-input": ["-", *out_file],
            "dask-usage": ["-", "--workers", "2", *out_file]}[case]
    code = ("import atexit, sys\n"
            "class Torn:\n    def __del__(self):\n        sys.stderr.write('torn down\\n')\n"
            "keep = Torn()\natexit.register(lambda: sys.stderr.write('atexit ran\\n'))\n"
            f"sys.argv = ['edgeclf', 'predict', sys.argv[1], *{args!r}]\n"
            "from edgeclf.cli.main import console\nconsole()\n")
    stdin = b"x1,x2\n0.1,0.2\n" if case != "bad-input" else b"x1,x3\n0.1,0.2\n"
    done = subprocess.run([sys.executable, "-c", code, str(ART)], input=stdin, capture_output=True)
    err = done.stderr.decode()
    assert "atexit ran" in err, err
    if case in ("ok", "to-file"):
        assert done.returncode == 0 and "torn down" not in err, err
        out = done.stdout if case == "ok" else (tmp_path / "p.csv").read_bytes()
        (tmp_path / "p.csv").unlink(missing_ok=True)
        usual = code.replace("import console\nconsole()", "import main\nmain()")  # the same bytes, and a teardown
        plain = subprocess.run([sys.executable, "-c", usual, str(ART)], input=stdin, capture_output=True)
        assert plain.returncode == 0 and "torn down" in plain.stderr.decode(), plain.stderr
        want = plain.stdout if case == "ok" else (tmp_path / "p.csv").read_bytes()
        assert out == want and out.startswith(b"label") and out.count(b"\n") == 2, (out, want)
    else:  # an error: its exit code and one line, without the teardown
        assert done.returncode in (1, 2) and "torn down" not in err and "Error" in err, err
        assert sorted(os.listdir(tmp_path)) == []


def test_float_texts_are_pyarrows():
    rng = np.random.default_rng(3)
    values = np.concatenate([
        rng.random(20000), rng.random(5000) ** 40, rng.standard_normal(20000) * 10.0 ** rng.integers(-44, 39, 20000),
        [0, -0.0, 1, 0.5, 1e-6, 9.999999e-7, 1e10, 9.999999e9, 123456789, 3.4028235e38, 1e-45, np.inf, -np.inf],
    ]).astype(np.float32)
    buf = io.BytesIO()
    pcsv.write_csv(pa.table({"v": pa.array(values, pa.float32())}), buf, pcsv.WriteOptions(include_header=False))
    assert float_texts(values) == buf.getvalue().decode().splitlines()


def test_numbers_parse_as_pyarrow_parses_them(tmp_path):
    """Every number form pyarrow accepts, rounded as it rounds (directly to float32, not through float64)."""
    texts = ["1", "1.", "+1", ".5", "-.5", "1e3", "1E+3", " 2\t", "00012", "1e0001", "inf", "-Infinity", "nan(ab_9)",
             "NAN", "1e39", "3.4028235e38", "3.4028236e38", "1e-50", "1.000000059604644775390625000001",
             "1.00000005960464477539062499999", "0.1000000014901161193847656249", "-0"]
    path = tmp_path / "n.csv"
    path.write_text("x1\n" + "\n".join(texts) + "\n")
    want = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types={"x1": pa.float32()}))["x1"]
    from edgeclf.scale.small import _floats

    got, missing = _floats(str(path), 0, texts)
    assert not missing.any()
    np.testing.assert_array_equal(got, want.to_numpy())  # NaN == NaN here; bit patterns of the rest equal
    assert got[18] != np.float32(float(texts[18]))  # through float64 this one would round to 1.0


def test_null_words_are_pyarrows():
    assert NULLS == set(pcsv.ConvertOptions().null_values)


def test_report_of_a_tiny_input_gives_rows_and_seconds(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b"x1,x2\n0.1,0.2\n0.3,0.4\n")
    report = score_small(ART, [str(path)], str(tmp_path / "out.csv"))
    text = str(report)
    assert re.match(r"scored 2 rows from 1 part\(s\) in \d+\.\d\d s -> ", text) and "M rows/s" not in text, text
