"""Loading and checking: onnxruntime sessions from an artifact's hash-checked bytes, their signature and metadata
held to the manifest, the execution providers checked before use."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import onnxruntime as ort

from edgeclf.runtime.errors import ArtifactError, InputError
from edgeclf.runtime.formats import FORMATS, INT8, ONNX, named
from edgeclf.runtime.manifest import FileEntry, Manifest, onnx_metadata

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
Runner = Callable[[list[str], dict[str, np.ndarray]], list[np.ndarray]]  # session.run(names, feed)
FLOAT32 = tuple(f.name for f in FORMATS if f.loadable and f is not INT8)  # Classifier.load's format= values


def file_format(format: str, precision: str) -> str:
    """The manifest format of the files Classifier.load(format=, precision=) runs."""
    if format not in FLOAT32:
        raise InputError(f"unknown format {format!r}: expected {' or '.join(map(repr, FLOAT32))}")
    if precision not in ("float32", "int8"):
        raise InputError(f"unknown precision {precision!r}: expected 'float32' or 'int8'")
    if precision == "int8":
        if format != ONNX.name:
            raise InputError(f"int8 is exported as ONNX only: use format={ONNX.name!r} with precision='int8'")
        return INT8.name
    return format


def check_providers(providers: Sequence[str] | None) -> list[str]:
    if isinstance(providers, str):
        raise InputError(f"providers={providers!r}: expected a list of execution providers, e.g. [{providers!r}]")
    wanted = list(providers or DEFAULT_PROVIDERS)
    available = ort.get_available_providers()
    missing = [p for p in wanted if p not in available]
    if missing:
        raise InputError(f"execution provider {missing[0]!r} is not available: this onnxruntime has {available}"
                         + _provider_hint(missing[0]))
    return wanted


def _provider_hint(provider: str) -> str:
    if provider != "CUDAExecutionProvider":
        return ""
    from importlib import metadata

    def installed(dist: str) -> bool:
        try:
            metadata.version(dist)
            return True
        except metadata.PackageNotFoundError:
            return False

    if installed("onnxruntime-gpu") and installed("onnxruntime"):
        return ("; both onnxruntime and onnxruntime-gpu are installed and the CPU build's files won: "
                "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu")
    if installed("onnxruntime-gpu"):
        return "; onnxruntime-gpu is installed but found no usable CUDA (driver, CUDA and cuDNN libraries)"
    return ("; on a machine with CUDA: pip install 'edgeclf[gpu]', then pip uninstall -y onnxruntime onnxruntime-gpu "
            "&& pip install onnxruntime-gpu (the CPU wheel, a base dependency, ships the same module)")


def runner_of(sess: ort.InferenceSession) -> Runner:
    """sess.run without the Python wrapper's per-call work (checking the feed's names, which check_signature
    did once at load): onnxruntime's own C++ binding where this version exposes it (~2-3 us of ~10 per one-row
    call), else the public run. Both run the same graph with the same kernels: the same bits. CPU sessions only:
    for another provider the public run keeps onnxruntime's fallback to the CPU provider when a run fails."""
    inner = getattr(sess, "_sess", None)
    if sess.get_providers()[0] == "CPUExecutionProvider" and inner is not None and callable(getattr(inner, "run", None)):
        def run(names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            return inner.run(names, feed, None)  # type: ignore[no-any-return]
        return run
    return sess.run  # type: ignore[no-any-return]


def open_session(manifest: Manifest, entry: FileEntry, data: bytes, providers: list[str],
                 intra_threads: int = 1) -> ort.InferenceSession:
    """A session from the file's hash-checked bytes (no re-read between check and use), its signature checked."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_threads  # 1: parallelism comes from chunks over our own threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(data, sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types for a bad model
        fmt = named(entry.format)
        kind = fmt.label if fmt else entry.format
        raise ArtifactError(f"{entry.path} is not a loadable {kind} model: "
                            f"{str(e).splitlines()[0][:200]}") from None
    check_signature(manifest, entry, sess)
    return sess


def check_signature(manifest: Manifest, entry: FileEntry, sess: ort.InferenceSession) -> None:
    """The graph's input/outputs must be exactly what the manifest promises."""
    f = len(manifest.features)
    got_in = [(i.name, list(i.shape), i.type) for i in sess.get_inputs()]
    sig = manifest.signature
    want_in = [(sig.input, [entry.batch_size, f], "tensor(float)")]
    got_out = {o.name: list(o.shape) for o in sess.get_outputs()}
    want_out = {o.name: [entry.batch_size, o.columns] for o in (sig.logits, sig.probabilities)}
    if got_in != want_in or any(got_out.get(k) != v for k, v in want_out.items()):
        raise ArtifactError(
            f"{entry.path}: graph signature input {got_in} outputs {got_out} disagrees with the manifest "
            f"(input {want_in}, outputs {want_out})"
        )
    meta = sess.get_modelmeta().custom_metadata_map  # written by the exporter: catches a file swapped in
    want_meta = onnx_metadata(manifest.task, manifest.kind, manifest.classes, manifest.feature_names, entry.batch_size)
    got_meta = {k: meta.get(k) for k in want_meta}
    if got_meta != want_meta:
        raise ArtifactError(f"{entry.path}: model metadata {got_meta} disagrees with the manifest {want_meta}")
