"""GET /metrics: Prometheus text format, in a registry of the server's own (not the process-wide default)."""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

SECONDS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
ROWS_BUCKETS = tuple(float(2 ** i) for i in range(17))  # 1 .. 65536 rows
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        # the _created series are noise for a scrape (and this process holds no other registry)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # model="" for requests that name no served model (health, /v2, an unknown name: never the raw name,
        # which a client could use to grow the label set without bound)
        self.requests = Counter("edgeclf_requests", "HTTP requests answered, by model and status code",
                                ["model", "code"], registry=r)
        self.seconds = Histogram("edgeclf_request_seconds", "Time from request to response, infer requests",
                                 ["model"], buckets=SECONDS_BUCKETS, registry=r)
        self.batch_rows = Histogram("edgeclf_batch_rows", "Rows per Classifier call (one batch)", ["model"],
                                    buckets=ROWS_BUCKETS, registry=r)
        self._counters: dict[tuple[str, int], Counter] = {}
        self._timers: dict[str, Histogram] = {}
        self.queue = Gauge("edgeclf_queue_depth", "Infer requests waiting for the model's worker", ["model"],
                           registry=r)

    def answered(self, model: str, status: int, infer_seconds: float | None) -> None:
        """Count a response; infer_seconds: the time of an infer request for a served model (else None)."""
        counter = self._counters.get((model, status))
        if counter is None:  # labels() per request costs a lock and a tuple: each child is looked up once
            counter = self._counters[(model, status)] = self.requests.labels(model, str(status))
        counter.inc()
        if infer_seconds is not None:
            timer = self._timers.get(model)
            if timer is None:
                timer = self._timers[model] = self.seconds.labels(model)
            timer.observe(infer_seconds)

    def track_queue(self, model: str, depth: Callable[[], float]) -> None:
        self.queue.labels(model).set_function(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)
