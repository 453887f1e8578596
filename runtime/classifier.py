"""Classifier: batched predictions from an artifact folder with onnxruntime and numpy only."""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import onnxruntime as ort

from edgeclf.runtime.errors import ArtifactError, InputError
from edgeclf.runtime.inputs import as_float32_rows, as_matrix, out_of_range
from edgeclf.runtime.manifest import FileEntry, Manifest, onnx_metadata

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

CALL_COST_ROWS = 400  # one session.run costs about as much as 400 rows of compute (~6.5 us vs 60 M rows/s)
DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
# The thread rules; the measurements are in docs/benchmarks.md (round two, second pass). "Parameters" stands in for
# the multiply-adds of one row, which is right for the MLPs edgeclf trains; for a brought-in model of another kind
# (e.g. convolutions, whose weights are reused across the input) it underestimates the work, and the rules then
# keep such a model on one thread for longer than needed: slower, never different bits.
#
# A serial call runs on a session with intra_op_num_threads = threads when its batch is at least WIDE_MIN_BATCH rows
# and batch x parameters is at least WIDE_MIN_WORK. Measured with 2 threads against 1 on the same file: 1.2-2.2x
# at 16384 rows for every built-in task; at 4096 rows 1.1-2.0x for breast_cancer, digits and wine (spirals
# 0.97-1.45x), which the rule includes, a tie for circles, iris and moons (0.97-1.05x), and 1.26-1.36x for blobs,
# which it leaves out; at 1024 rows 0.82-0.95x for blobs, circles, iris and moons, 0.54-1.30x for the others
# (noisy).
WIDE_MIN_BATCH = 4096
WIDE_MIN_WORK = 2_000_000
# A call is split over our own threads (one-thread sessions, chunk by chunk) from PARALLEL_MIN_ROWS rows, and, when
# the model has intra-op sessions, from PARALLEL_MIN_WORK of rows x parameters: waking our worker threads costs
# ~0.3-0.5 ms here, and a light model does better on the intra-op session chunk after chunk (circles at 100,000
# rows: 2.3 ms that way against 3.2 ms on our threads; at 250,000 rows 5.7 against 4.6 ms).
PARALLEL_MIN_ROWS = 32768
PARALLEL_MIN_WORK = 20_000_000

Plan = list[tuple[int, int, int]]  # (start, stop, batch size): stop - start <= batch size
Runner = Callable[[list[str], dict[str, np.ndarray]], list[np.ndarray]]  # session.run(names, feed)


def plan_chunks(n: int, sizes: Sequence[int], min_chunks: int = 1) -> Plan:
    """Cover n rows with fixed-size runs: full chunks of the largest size that still gives min_chunks of them
    (so that threads get a share each), then the cheapest tail in sizes up to that one."""
    sizes = sorted(sizes)
    if min_chunks > 1:
        cap = ([b for b in sizes if n // b >= min_chunks] or sizes[:1])[-1]
        sizes = [b for b in sizes if b <= cap]
    big = sizes[-1]
    plan: Plan = [(s, s + big, big) for s in range(0, n - n % big, big)]
    return plan + _tail(n - n % big, n % big, sizes)


def _tail(start: int, r: int, sizes: Sequence[int]) -> Plan:
    if r == 0:
        return []
    pad = min(b for b in sizes if b >= r)  # one padded run
    best: Plan = [(start, start + r, pad)]
    best_cost = CALL_COST_ROWS + pad
    for b in (b for b in sizes if b < r):  # or full runs of a smaller size, then the rest
        k = r // b
        rest = _tail(start + k * b, r - k * b, sizes)
        cost = k * (CALL_COST_ROWS + b) + sum(CALL_COST_ROWS + c[2] for c in rest)
        if cost < best_cost:
            best, best_cost = [(start + i * b, start + (i + 1) * b, b) for i in range(k)] + rest, cost
    return best


def wide_enough(batch: int, manifest: Manifest) -> bool:
    """Whether a serial call at this batch size is heavy enough for onnxruntime's intra-op threads to pay."""
    return batch >= WIDE_MIN_BATCH and batch * manifest.origin.parameters >= WIDE_MIN_WORK


def _file_format(format: str, precision: str) -> str:
    if format not in ("onnx", "ort"):
        raise InputError(f"unknown format {format!r}: expected 'onnx' or 'ort'")
    if precision not in ("float32", "int8"):
        raise InputError(f"unknown precision {precision!r}: expected 'float32' or 'int8'")
    if precision == "int8":
        if format != "onnx":
            raise InputError("int8 is exported as ONNX only: use format='onnx' with precision='int8'")
        return "onnx-int8"
    return format


def _check_providers(providers: Sequence[str] | None) -> list[str]:
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


class Classifier:
    """An exported edgeclf model, loaded from its artifact folder.

    >>> clf = Classifier.load("artifacts/circles")
    >>> clf.predict([[0.0, 0.1], [1.0, 0.0]])
    array(['inner', 'outer'], dtype='<U5')
    """

    def __init__(self, manifest: Manifest, sessions: dict[int, ort.InferenceSession], threads: int,
                 wide: Mapping[int, Callable[[], ort.InferenceSession]] | None = None) -> None:
        self.manifest = manifest
        self._sessions = sessions
        self.batch_sizes: tuple[int, ...] = tuple(sorted(sessions))
        self.classes_ = np.array(manifest.classes)
        self.features: tuple[str, ...] = manifest.feature_names
        self.n_features_in_ = len(self.features)
        self.threads = threads
        sig = manifest.signature
        self._input = sig.input
        # output key -> (graph output name, columns), resolved once: predict calls stay cheap
        self._outputs = {k: (sig.output(k).name, sig.output(k).columns) for k in ("logits", "probabilities")}
        self._runners = {b: _runner(sess) for b, sess in sessions.items()}
        # serial calls at these batch sizes get the same graph in a session with intra-op threads (same bits),
        # opened on first use, so that loading (and a one-row start-up) does not pay for it
        self._wide = {b: make for b, make in (wide or {}).items() if b in sessions}
        self._serial: dict[int, Runner] = {}
        first = next(iter(sessions.values())).get_providers()[0]
        self.device = "cuda" if first == "CUDAExecutionProvider" else "cpu"  # where the graphs run
        # the smallest call split over our threads; a light model's calls below PARALLEL_MIN_WORK do better on the
        # intra-op session where there is one
        self.parallel_min_rows = PARALLEL_MIN_ROWS if not self._wide else \
            max(PARALLEL_MIN_ROWS, -(-PARALLEL_MIN_WORK // max(1, manifest.origin.parameters)))
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @property
    def sessions(self) -> dict[int, ort.InferenceSession]:
        """The onnxruntime session of each exported batch size (for callers that want the raw graphs)."""
        return dict(self._sessions)

    @property
    def providers(self) -> list[str]:
        """The execution providers actually in use."""
        return list(next(iter(self._sessions.values())).get_providers())

    @classmethod
    def load(cls, path: str | os.PathLike[str], providers: Sequence[str] | None = None,
             threads: int | None = None, format: str = "onnx", precision: str = "float32",
             intra_op: bool = True) -> Classifier:
        """Open an artifact folder (or its manifest.json); every model file is checked against its sha256.

        format: "onnx" or "ort" (onnxruntime's format for minimal and mobile builds); precision: "float32" or
        "int8" (the statically quantised ONNX files). intra_op: whether heavy serial calls may run on sessions with
        onnxruntime's intra-op threads (faster for an app that calls predict and waits; but those threads spin
        between nodes, and in a pipeline whose other threads need the cores, e.g. a file reader and writer, they
        starve them: pass False there, as `edgeclf predict`'s streaming path does, and big calls are split over one-thread
        sessions instead)."""
        manifest, folder = Manifest.read(Path(path))
        kind = _file_format(format, precision)
        entries = manifest.files_of(kind)
        if not entries:
            raise ArtifactError(f"{folder}: the manifest lists no {kind} file; re-export with `edgeclf export`"
                                + ("" if kind == "onnx" else f" --format {'int8' if precision == 'int8' else format}"))
        wanted = _check_providers(providers)
        n_threads = max(1, threads if threads is not None else min(os.cpu_count() or 1, 8))
        sessions, wide = {}, {}
        for e in entries:
            data = manifest.read_checked(folder, e)[1]  # hash-checked once; every session is built from these bytes
            sessions[e.batch_size] = _open(manifest, e, data, wanted)
            if intra_op and n_threads > 1 and wanted[0] == "CPUExecutionProvider" and wide_enough(e.batch_size,
                                                                                                   manifest):
                wide[e.batch_size] = functools.partial(_open, manifest, e, data, wanted, n_threads)
        return cls(manifest, sessions, n_threads, wide)

    def predict_proba(self, x: Any, allow_nonfinite: bool = False) -> np.ndarray:
        """(N, C) float32 class probabilities; column i is classes_[i]."""
        return self._run(x, "probabilities", allow_nonfinite)

    def predict_logits(self, x: Any, allow_nonfinite: bool = False) -> np.ndarray:
        """(N, 1) logits for binary tasks, (N, C) for multiclass ones."""
        return self._run(x, "logits", allow_nonfinite)

    def predict(self, x: Any, allow_nonfinite: bool = False) -> np.ndarray:
        """(N,) class labels (strings from classes_)."""
        return self.classes_[self.predict_proba(x, allow_nonfinite).argmax(axis=1)]  # type: ignore[no-any-return]

    def out_of_range(self, x: Any) -> np.ndarray:
        """(N,) bool: the rows with a feature outside the range training saw (manifest features' min/max).
        The model still answers for them, but nothing was checked there: callers may want to flag them."""
        return out_of_range(as_matrix(x, self.features, allow_nonfinite=True), *self.manifest.training_range())

    def _run(self, x: Any, output: str, allow_nonfinite: bool) -> np.ndarray:
        mat = as_matrix(x, self.features, allow_nonfinite)  # (N, F), checked, not yet float32
        name, columns = self._outputs[output]
        n = len(mat)
        if self.device != "cpu" and n > self.batch_sizes[-1]:
            return self._run_bound(mat, output, self.device)
        serial = n < self.parallel_min_rows or self.threads == 1
        if serial and n in self._runners:  # exactly one exported batch: one run, its result returned without a copy
            return self._serial_runner(n)([name], {self._input: as_float32_rows(mat)})[0]
        out = np.empty((n, columns), np.float32)
        if serial:
            plan = plan_chunks(n, self.batch_sizes)
            runners = {b: self._serial_runner(b) for b in {c[2] for c in plan}}
            for chunk in plan:
                self._run_chunk(mat, out, name, chunk, runners)
        else:  # at least two chunks per thread: the last chunks even out the threads' shares
            plan = plan_chunks(n, self.batch_sizes, 2 * self.threads)
            self._parallel(lambda i: self._run_chunk(mat, out, name, plan[i], self._runners), len(plan))
        return out

    def _serial_runner(self, batch: int) -> Runner:
        """The runner a serial call at this batch size uses: the intra-op-threaded session where there is one."""
        run = self._serial.get(batch)
        if run is None:
            with self._pool_lock:
                run = self._serial.get(batch)
                if run is None:
                    make = self._wide.get(batch)
                    run = self._serial[batch] = _runner(make()) if make is not None else self._runners[batch]
        return run

    def _run_chunk(self, mat: np.ndarray, out: np.ndarray, name: str, chunk: tuple[int, int, int],
                   runners: dict[int, Runner]) -> None:
        start, stop, batch = chunk
        rows = as_float32_rows(mat[start:stop])  # a view for float32 C-contiguous input, else a chunk-sized cast
        if stop - start < batch:  # pad the tail; padding rows never reach `out`
            padded = np.zeros((batch, mat.shape[1]), np.float32)
            padded[: stop - start] = rows
            rows = padded
        result = runners[batch]([name], {self._input: rows})[0]
        out[start:stop] = result[: stop - start]

    def _run_bound(self, mat: np.ndarray, output: str, device: str) -> np.ndarray:
        """Every chunk through I/O binding on `device`: the input is copied there once, each full chunk reads its
        rows and writes its outputs in place (pointer offsets into one input and one output buffer), and the
        outputs come back in one copy; only the padded tail goes on its own. On CUDA this saves a host-device
        copy per chunk; on "cpu" it is the same arithmetic as the plain path (a test holds it to the same bits)."""
        name, columns = self._outputs[output]
        n, f = mat.shape
        rows = ort.OrtValue.ortvalue_from_numpy(as_float32_rows(mat), device, 0)
        out = ort.OrtValue.ortvalue_from_shape_and_type((n, columns), np.float32, device, 0)
        x_ptr, out_ptr = rows.data_ptr(), out.data_ptr()
        tail: tuple[int, int, np.ndarray] | None = None
        for start, stop, batch in plan_chunks(n, self.batch_sizes):
            sess = self._sessions[batch]
            binding = sess.io_binding()
            if stop - start == batch:
                binding.bind_input(self._input, device, 0, np.float32, (batch, f), x_ptr + start * f * 4)
                binding.bind_output(name, device, 0, np.float32, (batch, columns), out_ptr + start * columns * 4)
                sess.run_with_iobinding(binding)
            else:
                padded = np.zeros((batch, f), np.float32)
                padded[: stop - start] = mat[start:stop]
                binding.bind_cpu_input(self._input, padded)
                binding.bind_output(name, "cpu")
                sess.run_with_iobinding(binding)
                tail = (start, stop, binding.copy_outputs_to_cpu()[0])
        result: np.ndarray = out.numpy()
        if tail is not None:
            start, stop, got = tail
            result[start:stop] = got[: stop - start]
        return result

    def _parallel(self, work: Callable[[int], None], n: int) -> None:
        """Run work(0..n-1) on `threads` threads (the caller is one) pulling chunk indices from one iterator;
        sessions use one intra-op thread each, so the chunks are the unit of parallelism."""
        todo = iter(range(n))  # next() on it is atomic under the GIL

        def worker() -> None:
            for i in todo:
                work(i)

        futures = [self._executor().submit(worker) for _ in range(min(self.threads, n) - 1)]
        worker()
        for f in futures:
            f.result()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor  # imported here: ~20 ms of start-up (logging)

                self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="edgeclf")
            return self._pool

    def __repr__(self) -> str:
        return (f"Classifier(task={self.manifest.task!r}, classes={list(self.manifest.classes)}, "
                f"batch_sizes={list(self.batch_sizes)}, providers={self.providers})")


def _runner(sess: ort.InferenceSession) -> Runner:
    """sess.run without the Python wrapper's per-call work (checking the feed's names, which _check_signature
    did once at load): onnxruntime's own C++ binding where this version exposes it (~2-3 us of ~10 per one-row
    call), else the public run. Both run the same graph with the same kernels: the same bits. CPU sessions only:
    for another provider the public run keeps onnxruntime's fallback to the CPU provider when a run fails."""
    inner = getattr(sess, "_sess", None)
    if sess.get_providers()[0] == "CPUExecutionProvider" and inner is not None and callable(getattr(inner, "run", None)):
        def run(names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            return inner.run(names, feed, None)  # type: ignore[no-any-return]
        return run
    return sess.run  # type: ignore[no-any-return]


def _open(manifest: Manifest, entry: FileEntry, data: bytes, providers: list[str],
          intra_threads: int = 1) -> ort.InferenceSession:
    """A session from the file's hash-checked bytes (no re-read between check and use), its signature checked."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_threads  # 1: parallelism comes from chunks over our own threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(data, sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types for a bad model
        kind = {"onnx": "ONNX", "ort": ".ort", "onnx-int8": "int8 ONNX"}.get(entry.format, entry.format)
        raise ArtifactError(f"{entry.path} is not a loadable {kind} model: "
                            f"{str(e).splitlines()[0][:200]}") from None
    _check_signature(manifest, entry, sess)
    return sess


def _check_signature(manifest: Manifest, entry: FileEntry, sess: ort.InferenceSession) -> None:
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

