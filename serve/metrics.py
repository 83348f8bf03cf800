"""Prometheus metrics of one server: HTTP latency, batch sizes, queue and model timings, errors.

Each app gets its own `CollectorRegistry`, never prometheus_client's global one, so that a
process (a test session, a benchmark) can build many apps without name clashes. Batch
figures come from the Service's observer (`BatchRecord`, on a dispatcher thread, one per
model replica; the client is thread-safe); request figures come from `MetricsMiddleware`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.runtime.batcher import BatchRecord

__all__ = ["Metrics", "MetricsMiddleware"]

# From a tiny model's sub-millisecond batch to a slow request's deadline.
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Real tokens per batch: one short tweet (~8) up to 256 full 32-token rows.
_BATCH_TOKENS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class Metrics:
    """The server's metrics, registered in a registry of their own."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._latency = Histogram(
            "vigil_http_request_duration_seconds", "Time from request to the end of the response.",
            ["route", "status"], buckets=_SECONDS, registry=self.registry,
        )
        self._batch_size = Histogram(
            "vigil_batch_size", "Texts computed per batch.", buckets=_BATCH_SIZES, registry=self.registry
        )
        self._batch_tokens = Histogram(
            "vigil_batch_tokens", "Real (unpadded) tokens computed per batch.", buckets=_BATCH_TOKENS,
            registry=self.registry,
        )
        self._queue_depth = Gauge(
            "vigil_queue_depth", "Texts accepted but not yet handed to the model.", registry=self.registry
        )
        self._queue_wait = Histogram(
            "vigil_queue_wait_seconds", "Per text, time from being queued to its batch starting.",
            buckets=_SECONDS, registry=self.registry,
        )
        self._inference = Histogram(
            "vigil_inference_seconds", "Per batch, time the model took.", buckets=_SECONDS, registry=self.registry
        )
        self._errors = Counter(
            "vigil_errors", "Error answers by kind, and failed batches as kind batch_failed.",
            ["kind"], registry=self.registry,
        )

    def watch_queue_depth(self, depth: Callable[[], float]) -> None:
        """Read the queue depth from `depth` at each scrape, so it is never stale."""
        self._queue_depth.set_function(depth)

    def observe_batch(self, record: BatchRecord) -> None:
        """The Service's observer: called on a dispatcher thread after every batch."""
        self._batch_size.observe(record.size)
        self._batch_tokens.observe(record.work)
        for wait_s in record.queue_wait_s:
            self._queue_wait.observe(wait_s)
        self._inference.observe(record.compute_s)
        if record.error is not None:
            self._errors.labels(kind="batch_failed").inc()

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self._latency.labels(route=route, status=str(status)).observe(seconds)

    def count_error(self, kind: str) -> None:
        self._errors.labels(kind=kind).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Times every HTTP request, by route and status, from arrival to the end of the answer.

    The route label is the path template of the route that matched, or "other" when none
    did, so that scans of random paths cannot grow the number of series without bound.
    Bodies over the size limit are refused before routing, so their 413s count as "other"
    (and as kind body_too_large in the error counter).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = getattr(scope.get("route"), "path", "other")  # set by the router on a match
            self.metrics.observe_request(route, status, time.perf_counter() - started)
