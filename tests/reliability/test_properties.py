"""Property tests: labels agree with eager PyTorch for any finite float32 input; results are invariant to
chunking, row order, the choice of batch sizes and the number of threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import ARTIFACTS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgeclf.export.parity import MARGIN, labels_of, margin_of
from edgeclf.export.subject import from_trained
from edgeclf.runtime import Classifier, plan_chunks
from edgeclf.train.checkpoint import load_checkpoint

TASKS = ("circles", "blobs")
finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
everyday = st.floats(-20, 20, width=32)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def models():
    out = {}
    for task in TASKS:
        out[task] = (Classifier.load(ARTIFACTS / task, threads=2), from_trained(load_checkpoint(ARTIFACTS / task)).model)
    return out


def eager_proba(model, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x))[1].numpy()


@SETTINGS
@given(task=st.sampled_from(TASKS), x=arrays(np.float32, st.tuples(st.integers(0, 300), st.just(2)), elements=finite32))
def test_labels_match_eager_for_any_finite_float32(models, task, x):
    clf, eager = models[task]
    ref = eager_proba(eager, x)
    got = clf.predict_proba(x)
    decisive = margin_of(ref) > MARGIN  # NaN margins (overflowed rows) count as not decisive
    assert np.array_equal(labels_of(got)[decisive], labels_of(ref)[decisive])


@SETTINGS
@given(task=st.sampled_from(TASKS), x=arrays(np.float32, st.tuples(st.integers(1, 3000), st.just(2)), elements=everyday),
       cuts=st.lists(st.integers(0, 3000), max_size=6), seed=st.integers(0, 2**32 - 1))
def test_invariant_to_chunking_and_order(models, task, x, cuts, seed):
    clf, _ = models[task]
    whole = clf.predict_proba(x)
    bounds = sorted({0, len(x), *(c % (len(x) + 1) for c in cuts)})
    pieces = [clf.predict_proba(x[a:b]) for a, b in zip(bounds, bounds[1:])]
    assert np.array_equal(np.concatenate(pieces), whole)
    perm = np.random.default_rng(seed).permutation(len(x))
    assert np.array_equal(clf.predict_proba(x[perm]), whole[perm])


@SETTINGS
@given(task=st.sampled_from(TASKS), x=arrays(np.float32, st.tuples(st.integers(0, 2000), st.just(2)), elements=everyday),
       ladder=st.sets(st.sampled_from([1, 64, 1024, 4096, 16384]), min_size=1))
def test_invariant_to_batch_size_choice(models, task, x, ladder):
    clf, _ = models[task]
    subset = Classifier(clf.manifest, {b: s for b, s in clf.sessions.items() if b in ladder}, threads=1)
    assert np.array_equal(subset.predict_proba(x), clf.predict_proba(x))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(task=st.sampled_from(TASKS), n=st.integers(0, 50_000),
       seed=st.integers(0, 2**32 - 1), specials=st.lists(st.tuples(st.integers(0, 10**9), finite32, finite32), max_size=8),
       ladder=st.sets(st.sampled_from([1, 64, 1024, 4096, 16384]), min_size=1).filter(lambda s: s != {1}))
def test_threaded_path_matches_serial(models, task, n, seed, specials, ladder):
    """Inputs big enough for the thread pool: two threads give the serial results bit for bit, and every chunk of
    the plan, run alone at its own batch size, gives its rows."""
    clf, _ = models[task]
    sessions = {b: s for b, s in clf.sessions.items() if b in ladder}
    serial, threaded = Classifier(clf.manifest, sessions, threads=1), Classifier(clf.manifest, sessions, threads=2)
    n += threaded.parallel_min_rows  # the smallest input our threads take (32,768 rows: no intra-op sessions here)
    x = np.random.default_rng(seed).uniform(-20, 20, (n, 2)).astype(np.float32)  # (N, 2): too big for hypothesis
    for i, a, b in specials:  # plus a few rows hypothesis chooses, anywhere, any finite float32
        x[i % n] = (a, b)
    got = threaded.predict_proba(x)
    assert threaded._schedule._pool is not None  # the threaded branch ran (the pool is made on its first use)
    assert np.array_equal(got, serial.predict_proba(x), equal_nan=True)  # overflowing rows give NaN in both
    assert np.array_equal(threaded.predict_logits(x), serial.predict_logits(x), equal_nan=True)
    plan = plan_chunks(n, sorted(sessions))
    assert [c[0] for c in plan] == [0, *(c[1] for c in plan[:-1])] and plan[-1][1] == n  # contiguous, complete
    assert all(0 < stop - start <= b and b in sessions for start, stop, b in plan)
    for start, stop, _ in {plan[0], plan[len(plan) // 2], plan[-1]}:
        assert np.array_equal(got[start:stop], serial.predict_proba(x[start:stop]), equal_nan=True)
