"""The torch-free runtime: parity with eager for any N, input handling, tampered files, no torch imported."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import ARTIFACTS, BLOCKER, TASKS, python

from edgeclf.export.checks import check_set
from edgeclf.export.parity import compare
from edgeclf.export.subject import from_trained
from edgeclf.runtime import ArtifactError, Classifier, InputError, Manifest, plan_chunks
from edgeclf.train.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def classifiers():
    return {t: Classifier.load(ARTIFACTS / t) for t in TASKS}


@pytest.fixture(scope="module")
def references():
    """Per task: 100,000 rows (test set + grid, tiled) and eager PyTorch's outputs on them."""
    out = {}
    for task in TASKS:
        s = from_trained(load_checkpoint(ARTIFACTS / task, task))
        checks = check_set(s.model, s.check_rows, Manifest.read(ARTIFACTS / task)[0].domain)
        x = np.resize(checks.x, (100_000, s.n_features))  # tiled
        with torch.inference_mode():
            logits, probs = s.model(torch.from_numpy(x))
        out[task] = (x, logits.numpy(), probs.numpy(), checks.rounding(100_000))
    return out


def sizes_for(batch: int) -> list[int]:
    return sorted({0, 1, batch - 1, batch, batch + 1, 3 * batch + 7, 100_000} - {-1})


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("batch", [1, 64, 1024, 4096, 16384])
def test_runtime_parity_with_eager_for_any_n(task, batch, classifiers, references):
    clf = classifiers[task]
    x, logits, probs, rounding = references[task]
    for n in sizes_for(batch):
        got = (clf.predict_logits(x[:n]), clf.predict_proba(x[:n]))
        assert got[0].shape == (n, logits.shape[1]) and got[1].shape == (n, probs.shape[1])
        assert got[1].dtype == np.float32
        result = compare(f"{task} N={n}", got, (logits[:n], probs[:n]), rounding)
        assert result, str(result)
        assert list(clf.predict(x[:n])) == list(clf.classes_[got[1].argmax(1)])


@pytest.mark.parametrize("task", TASKS)
def test_row_result_independent_of_n_and_position(task, classifiers, references):
    clf = classifiers[task]
    x = references[task][0][:9000]
    full = clf.predict_proba(x)
    assert np.array_equal(np.concatenate([clf.predict_proba(x[i:i + 1]) for i in range(70)]), full[:70])
    for start, stop in [(0, 63), (1, 65), (4000, 8200), (17, 4113)]:
        assert np.array_equal(clf.predict_proba(x[start:stop]), full[start:stop])
    perm = np.random.default_rng(1).permutation(len(x))
    assert np.array_equal(clf.predict_proba(x[perm]), full[perm])


@pytest.mark.parametrize("task", TASKS)
def test_proba_and_logits_from_one_run_are_the_two_calls(task, classifiers, references):
    """predict_proba_logits (one run per chunk for both outputs: the server's) gives the bits of the two calls, on
    every path: one exported batch, a padded plan, the threaded plan."""
    clf = classifiers[task]
    x = references[task][0]
    for n in (0, 1, 64, 65, 33_000):
        p, z = clf.predict_proba_logits(x[:n])
        assert np.array_equal(p, clf.predict_proba(x[:n])) and np.array_equal(z, clf.predict_logits(x[:n])), n


def test_runtime_accuracy_on_test_set(classifiers):
    for task in TASKS:
        t = load_checkpoint(ARTIFACTS / task, task)
        labels = classifiers[task].predict(t.data.x_test)
        acc = (labels == np.array(t.task.classes)[t.data.y_test]).mean()
        assert acc == pytest.approx(t.metrics["test_accuracy"], abs=1e-6)
        assert acc >= t.task.target_accuracy


@pytest.mark.parametrize("n,sizes,expected", [
    (0, (1, 64, 4096), []),
    (1, (1, 64, 4096), [(0, 1, 1)]),
    (64, (1, 64, 4096), [(0, 64, 64)]),
    (65, (1, 64, 4096), [(0, 64, 64), (64, 65, 1)]),
    (4096 + 100, (1, 64, 4096), [(0, 4096, 4096), (4096, 4160, 64), (4160, 4196, 64)]),
    (3, (8,), [(0, 3, 8)]),
])
def test_plan_chunks(n, sizes, expected):
    plan = plan_chunks(n, sizes)
    assert plan == expected
    covered = [i for s, e, _ in plan for i in range(s, e)]
    assert covered == list(range(n)) and all(e - s <= b for s, e, b in plan)


def test_plan_covers_everything_for_many_n():
    for n in list(range(0, 300)) + [4095, 4096, 4097, 12345]:
        plan = plan_chunks(n, (1, 64, 4096))
        assert [i for s, e, _ in plan for i in range(s, e)] == list(range(n))


def test_attributes(classifiers):
    clf = classifiers["blobs"]
    assert list(clf.classes_) == ["blob0", "blob1", "blob2", "blob3"]
    assert clf.features == ("x1", "x2") and clf.n_features_in_ == 2 and clf.batch_sizes == (1, 64, 1024, 4096, 16384)
    assert clf.providers == ["CPUExecutionProvider"] and clf.manifest.task == "blobs"
    assert "blobs" in repr(clf)
    assert Classifier.load(ARTIFACTS / "blobs" / "manifest.json").batch_sizes == (1, 64, 1024, 4096, 16384)


def test_accepted_inputs_agree(classifiers):
    clf = classifiers["circles"]
    x = np.array([[0.1, -0.2], [1.0, 0.3], [-0.9, 0.5]])
    expect = clf.predict_proba(x.astype(np.float32))
    variants = {
        "list": x.tolist(), "float64": x, "float16": x.astype(np.float16),  # a real float16 array
        "int": np.array([[0, 0], [1, 0], [-1, 0]]),
        "fortran": np.asfortranarray(x), "strided": np.repeat(x, 2, axis=0)[::2],
        "frame": pd.DataFrame(x, columns=["x1", "x2"]),
        "frame-reordered": pd.DataFrame(x[:, ::-1], columns=["x2", "x1"]),
        "frame-extra-columns": pd.DataFrame({"id": [7, 8, 9], "x2": x[:, 1], "note": list("abc"), "x1": x[:, 0]}),
        "frame-positional": pd.DataFrame(x),
    }
    for name, v in variants.items():
        got = clf.predict_proba(v)
        # int and float16 hold other values than x: their reference is the same values widened to float32 first
        ref = expect if name not in ("int", "float16") else clf.predict_proba(np.asarray(v, np.float32))
        assert np.array_equal(got, ref), name
    assert variants["float16"].dtype == np.float16 and not np.array_equal(variants["float16"], x)  # rounded
    half = np.random.default_rng(3).uniform(-1, 1, (64, 2)).astype(np.float16)  # exactly one exported batch: one run
    assert np.array_equal(clf.predict_proba(half), clf.predict_proba(half.astype(np.float32)))
    assert clf.predict_proba([0.1, -0.2]).shape == (1, 2)  # a single row
    assert clf.predict_proba(np.zeros((0, 2))).shape == (0, 2)
    assert np.array_equal(clf.predict_proba(x[::-1]), expect[::-1])  # negative strides


@pytest.mark.parametrize("bad,fragments", [
    (np.zeros((4, 3)), ["(4, 3)", "(N, 2)"]),
    (np.zeros((2, 2, 2)), ["(2, 2, 2)"]),
    (np.float32(1.0), ["shape ()"]),
    ([], ["shape (0,)"]),
    ([[1.0, 2.0], [3.0]], ["rectangular"]),
    (np.array([["a", "b"]]), ["<U1", "strings"]),
    (np.array([[True, False]]), ["bool", "booleans"]),
    (np.array([[1 + 2j, 0]]), ["complex"]),
    (np.array([[1.0, None]], dtype=object), ["object"]),
    (np.array([[0.0, 0.0], [np.nan, 1.0], [0.0, np.inf]]), ["NaN or inf", "row(s) 1, 2", "row 1, column 'x1'"]),
    (np.array([[0.0, 0.0], [0.0, np.nan]]), ["row 1, column 'x2'"]),
    (np.array([[1e39, 0.0]]), ["1e+39", "float32"]),
    (pd.DataFrame({"x1": [1.0], "x3": [2.0]}), ["no column 'x2'", "x3"]),
    (pd.DataFrame({"x1": [1.0], "x2": ["a"]}), ["'x2'", "dtype"]),
    (pd.DataFrame([[1.0, 2.0, 3.0]], columns=["x1", "x2", "x2"]), ["'x2' twice"]),
], ids=["features", "3d", "0d", "empty-1d", "ragged", "str", "bool", "complex", "object", "nan-inf", "nan-col",
        "overflow", "frame-missing", "frame-str", "frame-duplicate"])
def test_input_errors(bad, fragments, classifiers):
    with pytest.raises(InputError) as err:
        classifiers["circles"].predict_proba(bad)
    assert isinstance(err.value, ValueError)
    for f in fragments:
        assert f in str(err.value), str(err.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("n", [1, 16, 17, 500, 4099, 600_000])
def test_every_nonfinite_value_is_found(n, dtype, classifiers):
    """Each of the finiteness check's paths (Python sum, dot product, np.isfinite, float64 sum; C-contiguous or not)
    finds one NaN/inf/-inf wherever it sits: first value, a SIMD tail, the last value."""
    clf = classifiers["circles"]
    x = np.random.default_rng(n).uniform(-1, 1, (n, 2)).astype(dtype)
    for pos in sorted({0, x.size // 2 + 1, x.size - 3, x.size - 1} & set(range(x.size))):
        for value in (np.nan, np.inf, -np.inf):
            for arr in (x.copy(), np.array(x, order="F")):
                arr.flat[pos] = value
                with pytest.raises(InputError, match=f"first in row {pos // 2},"):
                    clf.predict_proba(arr)

def test_extreme_finite_values_pass_quietly():
    """Huge values (whose squares, or sums, would overflow float32) and tiny ones (whose weighted products
    underflow) are finite: they pass the check, with no warning even under -W error, and no FloatingPointError
    under np.seterr(all="raise"), whatever the size (one chunk of the check or many)."""
    code = f"""
import warnings
import numpy as np
from edgeclf.runtime import Classifier
warnings.simplefilter("error")  # after the import too: any filter the runtime set up would be overridden
clf = Classifier.load({str(ARTIFACTS / "circles")!r})
for n in (17, 500, 4099, 600_000):
    for extreme in (1e20, 3e38, 1e17, 1e-30, 1e-45):
        x = np.random.default_rng(n).uniform(-1, 1, (n, 2)).astype(np.float32)
        x[n // 2] = extreme
        if extreme == 1e17:
            x[: n // 2] = extreme  # many moderate values: their squares' sum would overflow
        ref = clf.predict_proba(x, allow_nonfinite=True)
        assert np.array_equal(clf.predict_proba(x), ref, equal_nan=True)
        with np.errstate(all="raise"):
            assert np.array_equal(clf.predict_proba(x), ref, equal_nan=True)
print("ok")
"""
    p = python("-W", "error", "-c", code)
    assert p.returncode == 0 and p.stdout.strip() == "ok" and not p.stderr, p.stderr


def test_nonfinite_allowed_when_asked(classifiers):
    clf = classifiers["circles"]
    p = clf.predict_proba([[np.nan, 0.0], [0.5, 0.5]], allow_nonfinite=True)
    assert p.shape == (2, 2)
    assert np.array_equal(p[1], clf.predict_proba([[0.5, 0.5]])[0])  # the finite row is unaffected


def test_out_of_range_rows(classifiers):
    clf = classifiers["circles"]
    lo = np.array([f.min for f in clf.manifest.features])
    hi = np.array([f.max for f in clf.manifest.features])
    x = np.array([(lo + hi) / 2, lo, hi, lo - 1e-3, [hi[0] + 5, lo[1]], [np.nan, 0.0]])
    assert list(clf.out_of_range(x)) == [False, False, False, True, True, False]


def test_unknown_provider_is_clear():
    with pytest.raises(InputError, match="'TensorrtExecutionProvider' is not available"):
        Classifier.load(ARTIFACTS / "circles", providers=["TensorrtExecutionProvider"])


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "delete"])
def test_tampered_files_refused(damage, artifact_copy):
    folder = artifact_copy("circles")
    f = folder / "model.b64.onnx"
    data = f.read_bytes()
    if damage == "flip":
        f.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "truncate":
        f.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        f.write_bytes(b"")
    else:
        f.unlink()
    with pytest.raises(ArtifactError, match="model.b64.onnx"):
        Classifier.load(folder)


def test_missing_folder_is_clear(tmp_path):
    with pytest.raises(ArtifactError, match="no manifest.json"):
        Classifier.load(tmp_path)


def test_thread_pool_path_equals_serial(references):
    x = references["spirals"][0]
    serial = Classifier.load(ARTIFACTS / "spirals", threads=1).predict_proba(x)
    pooled = Classifier.load(ARTIFACTS / "spirals", threads=4).predict_proba(x)
    assert np.array_equal(serial, pooled)


def test_runtime_works_with_torch_blocked(tmp_path):
    folder = tmp_path / "blobs"
    shutil.copytree(ARTIFACTS / "blobs", folder)
    code = BLOCKER + f"""
from edgeclf.runtime import Classifier
clf = Classifier.load({str(folder)!r})
print(list(clf.predict([[-8.0, 7.0], [5.0, 2.0]])), clf.predict_proba([[0.0, 0.0]]).shape)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
assert not heavy, heavy
"""
    p = python("-c", code)
    assert p.returncode == 0, p.stderr
    assert "(1, 4)" in p.stdout


def test_intra_op_sessions_only_for_heavy_calls():
    """A serial call gets onnxruntime's intra-op threads only where the call is heavy: never at 1024 rows (the
    per-node fork/join costs more than it saves), from 4096 rows for spirals and digits, only at 16384 for circles
    (4096 x 151 parameters is too little work)."""
    loaded = {task: Classifier.load(ARTIFACTS / task, threads=2) for task in ("circles", "spirals", "digits")}
    assert {t: sorted(c._schedule.intra_op) for t, c in loaded.items()} == {
        "circles": [16384], "spirals": [4096, 16384], "digits": [4096, 16384]}
    # our own threads from 32768 rows, for a light model from 20M multiply-adds (circles: 151 parameters)
    assert {t: c.parallel_min_rows for t, c in loaded.items()} == {"circles": 132451, "spirals": 32768, "digits": 32768}
    assert not Classifier.load(ARTIFACTS / "digits", threads=1)._schedule.intra_op  # one thread: no second session
    off = Classifier.load(ARTIFACTS / "circles", threads=2, intra_op=False)  # as file scoring loads it
    assert not off._schedule.intra_op and off.parallel_min_rows == 32768  # big calls go to our threads, one-thread sessions
    x = np.random.default_rng(5).uniform(-1, 1, (40_000, 2)).astype(np.float32)
    assert np.array_equal(off.predict_proba(x), loaded["circles"].predict_proba(x))


@pytest.mark.parametrize("task", ["wine", "spirals", "digits"])
def test_intra_op_sessions_give_the_single_thread_bits(task):
    """Serial calls at heavy batch sizes run on sessions with onnxruntime's intra-op threads when threads > 1: the
    same graph, split by onnxruntime across threads, must give exactly the one-thread results."""
    from edgeclf.runtime.schedule import PARALLEL_MIN_ROWS

    two, one = Classifier.load(ARTIFACTS / task, threads=2), Classifier.load(ARTIFACTS / task, threads=1)
    assert not two._schedule.serial  # opened on first use: loading does not pay for them
    assert two._schedule.serial_runner(4096) is not two._schedule.runners[4096]
    assert two._schedule.serial_runner(64) is two._schedule.runners[64]  # a light call: the one-thread session
    ones = one._schedule  # one thread: no second session
    assert all(ones.serial_runner(b) is ones.runners[b] for b in ones.runners)
    x = np.random.default_rng(4).uniform(two.manifest.domain.low, two.manifest.domain.high,
                                         (PARALLEL_MIN_ROWS - 1, two.n_features_in_)).astype(np.float32)
    for n in (4096, 16384, 4096 + 16384, PARALLEL_MIN_ROWS - 1):  # feature-major (wine) and row-major graphs
        assert np.array_equal(two.predict_proba(x[:n]), one.predict_proba(x[:n])), n
        assert np.array_equal(two.predict_logits(x[:n]), one.predict_logits(x[:n])), n


def test_threaded_plan_gives_every_thread_chunks():
    ladder = (1, 64, 1024, 4096, 16384)
    assert plan_chunks(777, ladder) == [(0, 777, 1024)]  # serial: one padded run beats 12 runs of 64
    plan = plan_chunks(40_000, ladder, min_chunks=4)
    assert max(b for _, _, b in plan) == 4096 and len(plan) >= 4  # 16384 would give 2 chunks to 2 threads
    assert [c[0] for c in plan] == [0, *(c[1] for c in plan[:-1])] and plan[-1][1] == 40_000
