"""Dynamic batching: concurrent requests for one model become one Classifier call, split back afterwards.

One worker thread per loaded model takes jobs from a queue: the first job waiting, then every job already queued
(and, with a delay, those arriving within it) up to max_rows rows. A job larger than that runs alone. The
runtime's rows are independent and every exported batch size computes a row the same way, so a request's answer
is bit-identical to the Classifier's on that request alone (tests/test_serve.py checks it under load). A worker
runs one call at a time: onnxruntime releases the GIL, and the event loop keeps parsing requests meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edgeclf.runtime import Classifier
from edgeclf.runtime.classifier import decide

Result = dict[str, np.ndarray]  # output name -> (n, ...) array for one job


class Overloaded(Exception):
    """The model's queue is full: the server answers 503 with Retry-After."""


@dataclass
class Job:
    rows: np.ndarray  # (n, F) float32, checked
    wants: frozenset[str]  # "probabilities", "logits", "label"
    future: asyncio.Future[Result]
    start: float = field(default_factory=time.monotonic)


_STOP: Any = object()


class Batcher:
    """The queue and worker thread of one loaded model version.

    The event loop hands jobs over once per loop iteration (one queue item holding every job that arrived in it),
    not once per job: each hand-over wakes the worker, which then competes with the loop for the GIL."""

    def __init__(self, clf: Classifier, max_rows: int, max_delay_s: float, max_queue: int,
                 on_batch: Callable[[int], None] = lambda rows: None) -> None:
        self.clf, self.max_rows, self.max_delay_s, self.max_queue = clf, max_rows, max_delay_s, max_queue
        self.on_batch = on_batch
        self._pending: list[Job] = []  # the event loop's side: this iteration's jobs
        self._queue: queue.SimpleQueue[list[Job]] = queue.SimpleQueue()
        self._backlog: collections.deque[Job] = collections.deque()  # the worker's side
        self._stopping = False
        self._waiting = 0  # jobs submitted and not yet taken into a batch
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="edgeclf-batcher", daemon=True)
        self._thread.start()

    def depth(self) -> int:
        """Jobs waiting (not the batch being computed)."""
        return self._waiting

    def submit(self, rows: np.ndarray, wants: frozenset[str]) -> asyncio.Future[Result]:
        if self._waiting >= self.max_queue:
            raise Overloaded(f"{self._waiting} requests are waiting for this model (--max-queue {self.max_queue})")
        loop = asyncio.get_running_loop()
        job = Job(rows, wants, loop.create_future())
        with self._lock:
            self._waiting += 1
        if not self._pending:
            loop.call_soon(self._flush)  # after the callbacks already ready: the requests read in this iteration
        self._pending.append(job)
        return job.future

    def _flush(self) -> None:
        if self._pending:
            self._queue.put(self._pending)
            self._pending = []

    def close(self) -> None:
        """(On the event loop.) Finish every job submitted, then stop the worker; join() waits for it."""
        self._flush()
        self._queue.put(_STOP)

    def join(self) -> None:
        self._thread.join()

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch)

    def _fill(self, timeout: float | None) -> bool:
        """Move one hand-over into the backlog, waiting up to timeout (None: for ever); False if none came."""
        if self._stopping:
            return False
        try:
            item = self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return False
        if item is _STOP:
            self._stopping = True
            return False
        self._backlog.extend(item)
        return True

    def _next_batch(self) -> list[Job] | None:
        """The oldest job, then the following ones while they fit in max_rows (a bigger first job runs alone),
        waiting for more until the first job's deadline; None once stopped with nothing left."""
        while not self._backlog:
            if not self._fill(None) and self._stopping:
                return None
        first = self._backlog.popleft()
        batch, rows = [first], len(first.rows)
        deadline = first.start + self.max_delay_s
        while rows < self.max_rows:
            if not self._backlog and not self._fill(deadline - time.monotonic()):
                break
            if rows + len(self._backlog[0].rows) > self.max_rows:
                break  # it starts the next batch
            job = self._backlog.popleft()
            batch.append(job)
            rows += len(job.rows)
        with self._lock:
            self._waiting -= len(batch)
        return batch

    def _run(self, batch: list[Job]) -> None:
        x = batch[0].rows if len(batch) == 1 else np.concatenate([j.rows for j in batch])
        wants = frozenset().union(*(j.wants for j in batch))
        try:
            out = self._predict(x, wants)
        except Exception as e:  # the rows were checked: this is the runtime failing, told to each caller
            _deliver(batch, [e] * len(batch))
            return
        self.on_batch(len(x))
        results: list[Result | Exception] = []
        start = 0
        for j in batch:
            stop = start + len(j.rows)
            results.append({k: v[start:stop] for k, v in out.items() if k in j.wants})
            start = stop
        _deliver(batch, results)

    def _predict(self, x: np.ndarray, wants: frozenset[str]) -> Result:
        """One run of the graph for whatever outputs the batch's jobs want."""
        clf = self.clf
        out: Result = {}
        if "logits" in wants and wants & {"probabilities", "label"}:
            out["probabilities"], out["logits"] = clf.predict_proba_logits(x)
        elif "logits" in wants:
            out["logits"] = clf.predict_logits(x)
        else:
            out["probabilities"] = clf.predict_proba(x)
        if "label" in wants:  # as Classifier.predict does: class names (N,), or a multi-label model's (N, L) bool
            out["label"] = decide(out["probabilities"], clf.classes_, clf.decision_thresholds)
        return out


def _deliver(batch: list[Job], results: list[Result | Exception]) -> None:
    """Hand the results to the event loop in one callback (one wake-up per batch, not per job)."""
    loop = batch[0].future.get_loop()

    def settle() -> None:
        for job, r in zip(batch, results):
            if job.future.done():  # the client left and its handler was cancelled
                continue
            if isinstance(r, Exception):
                job.future.set_exception(r)
            else:
                job.future.set_result(r)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass
