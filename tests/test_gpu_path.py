"""The CUDA path of the Classifier: provider selection and its errors, and the I/O-binding chunk loop it runs on
(exercised on CPU memory here, where it must give the plain path's bits; on CUDA where a GPU is present)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from helpers import ARTIFACTS

from edgeclf.runtime import Classifier
from edgeclf.runtime.errors import InputError

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has CUDA: the missing-provider error cannot happen")
def test_missing_cuda_provider_is_a_clear_error():
    with pytest.raises(InputError, match=r"execution provider 'CUDAExecutionProvider' is not available: .*"
                                         r"(edgeclf\[gpu\]|onnxruntime-gpu)"):
        Classifier.load(ARTIFACTS / "circles", providers=["CUDAExecutionProvider"])


def test_provider_arguments():
    with pytest.raises(InputError, match="expected a list of execution providers"):
        Classifier.load(ARTIFACTS / "circles", providers="CPUExecutionProvider")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="'NoSuchExecutionProvider' is not available"):
        Classifier.load(ARTIFACTS / "circles", providers=["NoSuchExecutionProvider"])
    clf = Classifier.load(ARTIFACTS / "circles")
    assert clf.device == "cpu" and clf.providers == ["CPUExecutionProvider"]


@pytest.mark.parametrize("task", ["circles", "iris", "digits"])
def test_bound_chunk_loop_gives_the_plain_paths_bits(task):
    clf = Classifier.load(ARTIFACTS / task, threads=1)
    big = clf.batch_sizes[-1]
    rng = np.random.default_rng(2)
    for n in (big + 1, 2 * big, 2 * big + 1023, 3 * big + 70):
        x = rng.uniform(clf.manifest.domain.low, clf.manifest.domain.high, (n, clf.n_features_in_))
        for output in ("probabilities", "logits"):
            plain = clf.predict_proba(x) if output == "probabilities" else clf.predict_logits(x)
            bound = clf._schedule.run_bound(x, *clf._outputs[output], "cpu")  # float64 in: cast once, as the CUDA path does
            assert bound.shape == plain.shape and bound.dtype == np.float32
            assert np.array_equal(bound, plain), (task, n, output)


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDAExecutionProvider in this onnxruntime (pip install 'edgeclf[gpu]')")
def test_cuda_classifier_matches_cpu():
    gpu = Classifier.load(ARTIFACTS / "circles", providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    cpu = Classifier.load(ARTIFACTS / "circles")
    assert gpu.device == "cuda"
    x = np.random.default_rng(0).uniform(-1.5, 1.5, (100_000, 2)).astype(np.float32)
    assert np.abs(gpu.predict_proba(x) - cpu.predict_proba(x)).max() <= 1e-5
