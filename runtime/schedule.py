"""Scheduling: how one call's rows become runs of the fixed-batch sessions (the chunk plan, padding), which
session a serial call uses (onnxruntime's intra-op threads or one thread), our own thread pool for big calls,
and I/O binding for a GPU. Every path gives the same bits: rows are independent and each runs the same graph."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np
import onnxruntime as ort

from edgeclf.runtime.inputs import as_float32_rows
from edgeclf.runtime.sessions import Runner, runner_of

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

CALL_COST_ROWS = 400  # one session.run costs about as much as 400 rows of compute (~6.5 us vs 60 M rows/s)
# The thread rules; the measurements are in docs/benchmarks.md (round two, second pass). "Parameters" stands in for
# the multiply-adds of one row, which is right for the MLPs edgeclf trains; for a brought-in model of another kind
# (e.g. convolutions, whose weights are reused across the input) it underestimates the work, and the rules then
# keep such a model on one thread for longer than needed: slower, never different bits.
#
# A serial call runs on a session with intra_op_num_threads = threads when its batch is at least INTRA_OP_MIN_BATCH
# rows and batch x parameters is at least INTRA_OP_MIN_WORK (docs/benchmarks.md: 2 threads against 1 gained at
# 16384 rows for every built-in task, at 4096 rows only for the heavier ones, and lost at 1024 rows).
INTRA_OP_MIN_BATCH = 4096
INTRA_OP_MIN_WORK = 2_000_000
# A call is split over our own threads (one-thread sessions, chunk by chunk) from PARALLEL_MIN_ROWS rows, and, when
# the model has intra-op sessions, from PARALLEL_MIN_WORK of rows x parameters: waking our worker threads has a
# fixed cost, and a light model does better on the intra-op session chunk after chunk (docs/benchmarks.md).
PARALLEL_MIN_ROWS = 32768
PARALLEL_MIN_WORK = 20_000_000

Plan = list[tuple[int, int, int]]  # (start, stop, batch size): stop - start <= batch size


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


def uses_intra_op(batch: int, parameters: int) -> bool:
    """Whether a serial call at this batch size is heavy enough for onnxruntime's intra-op threads to pay."""
    return batch >= INTRA_OP_MIN_BATCH and batch * parameters >= INTRA_OP_MIN_WORK


class Scheduler:
    """Runs an (N, F) matrix through the fixed-batch sessions of one model and returns one output, (N, columns).

    sessions: one-thread session per batch size; intra_op: for some batch sizes, a factory of the same graph in a
    session with onnxruntime's intra-op threads (opened on first use, so that loading does not pay for it)."""

    def __init__(self, sessions: dict[int, ort.InferenceSession], input_name: str, threads: int, parameters: int,
                 intra_op: Mapping[int, Callable[[], ort.InferenceSession]] | None = None) -> None:
        self.sessions = sessions
        self.batch_sizes: tuple[int, ...] = tuple(sorted(sessions))
        self.input_name = input_name
        self.threads = threads
        self.runners = {b: runner_of(sess) for b, sess in sessions.items()}
        self.intra_op = {b: make for b, make in (intra_op or {}).items() if b in sessions}
        self.serial: dict[int, Runner] = {}  # the runner each serial batch size settled on
        first = next(iter(sessions.values())).get_providers()[0]
        self.device = "cuda" if first == "CUDAExecutionProvider" else "cpu"  # where the graphs run
        # the smallest call split over our threads; a light model's calls below PARALLEL_MIN_WORK do better on the
        # intra-op session where there is one
        self.parallel_min_rows = PARALLEL_MIN_ROWS if not self.intra_op else \
            max(PARALLEL_MIN_ROWS, -(-PARALLEL_MIN_WORK // max(1, parameters)))
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def run(self, mat: np.ndarray, name: str, columns: int) -> np.ndarray:
        return self.run_many(mat, ((name, columns),))[0]

    def run_many(self, mat: np.ndarray, outputs: Sequence[tuple[str, int]]) -> list[np.ndarray]:
        """Several outputs, (N, columns) each, from the same runs of the graph (one run per chunk, not per output).
        Except on a GPU device with more rows than the largest exported batch: there each output is its own bound
        run over the chunks (run_bound binds one output), so the graph runs once per output."""
        n = len(mat)
        names = [name for name, _ in outputs]
        if self.device != "cpu" and n > self.batch_sizes[-1]:
            return [self.run_bound(mat, name, columns, self.device) for name, columns in outputs]
        serial = n < self.parallel_min_rows or self.threads == 1
        if serial and n in self.runners:  # exactly one exported batch: one run, its results returned without a copy
            return self.serial_runner(n)(names, {self.input_name: as_float32_rows(mat)})
        out = [np.empty((n, columns), np.float32) for _, columns in outputs]
        if serial:
            plan = plan_chunks(n, self.batch_sizes)
            runners = {b: self.serial_runner(b) for b in {c[2] for c in plan}}
            for chunk in plan:
                self._run_chunk(mat, out, names, chunk, runners)
        else:  # at least two chunks per thread: the last chunks even out the threads' shares
            plan = plan_chunks(n, self.batch_sizes, 2 * self.threads)
            self._parallel(lambda i: self._run_chunk(mat, out, names, plan[i], self.runners), len(plan))
        return out

    def serial_runner(self, batch: int) -> Runner:
        """The runner a serial call at this batch size uses: the intra-op-threaded session where there is one."""
        run = self.serial.get(batch)
        if run is None:
            with self._lock:
                run = self.serial.get(batch)
                if run is None:
                    make = self.intra_op.get(batch)
                    run = self.serial[batch] = runner_of(make()) if make is not None else self.runners[batch]
        return run

    def _run_chunk(self, mat: np.ndarray, out: list[np.ndarray], names: list[str], chunk: tuple[int, int, int],
                   runners: dict[int, Runner]) -> None:
        start, stop, batch = chunk
        rows = as_float32_rows(mat[start:stop])  # a view for float32 C-contiguous input, else a chunk-sized cast
        if stop - start < batch:  # pad the tail; padding rows never reach `out`
            padded = np.zeros((batch, mat.shape[1]), np.float32)
            padded[: stop - start] = rows
            rows = padded
        for o, result in zip(out, runners[batch](names, {self.input_name: rows})):
            o[start:stop] = result[: stop - start]

    def run_bound(self, mat: np.ndarray, name: str, columns: int, device: str) -> np.ndarray:
        """Every chunk through I/O binding on `device`: the input is copied there once, each full chunk reads its
        rows and writes its outputs in place (pointer offsets into one input and one output buffer), and the
        outputs come back in one copy; only the padded tail goes on its own. On CUDA this saves a host-device
        copy per chunk; on "cpu" it is the same arithmetic as the plain path (a test holds it to the same bits)."""
        n, f = mat.shape
        rows = ort.OrtValue.ortvalue_from_numpy(as_float32_rows(mat), device, 0)
        out = ort.OrtValue.ortvalue_from_shape_and_type((n, columns), np.float32, device, 0)
        x_ptr, out_ptr = rows.data_ptr(), out.data_ptr()
        tail: tuple[int, int, np.ndarray] | None = None
        for start, stop, batch in plan_chunks(n, self.batch_sizes):
            sess = self.sessions[batch]
            binding = sess.io_binding()
            if stop - start == batch:
                binding.bind_input(self.input_name, device, 0, np.float32, (batch, f), x_ptr + start * f * 4)
                binding.bind_output(name, device, 0, np.float32, (batch, columns), out_ptr + start * columns * 4)
                sess.run_with_iobinding(binding)
            else:
                padded = np.zeros((batch, f), np.float32)
                padded[: stop - start] = mat[start:stop]
                binding.bind_cpu_input(self.input_name, padded)
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
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor  # imported here: its logging import costs start-up

                self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="edgeclf")
            return self._pool
