"""Prometheus metrics, one CollectorRegistry per app (so several apps in one process do not clash).

Per variant: requests by status, latency histograms by stage (decode, queue wait, inference,
total), batch sizes, queue depth, and loaded / degraded gauges. Served at GET /metrics. The JSON
summary's p50 and p99 come from each variant's most recent exact request times, not the histogram:
its buckets are too wide (2.5x apart) for a live figure.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STAGES = ("decode", "queue_wait", "inference", "total")
RECENT_REQUESTS = 1000  # per variant: the request times the summary's p50 and p99 are computed from


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("vitserve_requests_total", "Prediction requests by variant and HTTP status",
                                ["variant", "status"], registry=self.registry)
        self.latency = Histogram("vitserve_request_stage_seconds", "Time per request stage",
                                 ["variant", "stage"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("vitserve_batch_size", "Images per forward pass", ["variant"],
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self.queue_depth = Gauge("vitserve_queue_depth", "Requests waiting for a variant", ["variant"],
                                 registry=self.registry)
        self.worker_restarts = Counter("vitserve_worker_restarts_total", "Batch workers that died and were "
                                       "restarted", ["variant"], registry=self.registry)
        self.route_choices = Counter("vitserve_route_choices_total", "Variants chosen for /predict/auto, cascade "
                                     "escalations and degraded answers, by route, variant and reason",
                                     ["route", "variant", "reason"], registry=self.registry)
        self.loaded = Gauge("vitserve_variant_loaded", "1 when the variant serves", ["variant"],
                            registry=self.registry)
        self.degraded = Gauge("vitserve_variant_degraded", "1 when the variant failed to load", ["variant"],
                              registry=self.registry)
        self.recent_ms: dict[str, deque[float]] = {}
        self.recent_lock = threading.Lock()

    def record_variants(self, availability: dict[str, bool]) -> None:
        for name, available in availability.items():
            self.loaded.labels(name).set(1 if available else 0)
            self.degraded.labels(name).set(0 if available else 1)

    def record_request(self, variant: str, known: bool, status: int, started: float) -> None:
        """Count a finished request and its total time; unknown variant names are not labels (they would grow
        without bound)."""
        if known:
            self.requests.labels(variant, str(status)).inc()
            self.observe_total(variant, time.perf_counter() - started)

    def observe_total(self, variant: str, seconds: float) -> None:
        self.latency.labels(variant, "total").observe(seconds)
        with self.recent_lock:
            self.recent_ms.setdefault(variant, deque(maxlen=RECENT_REQUESTS)).append(seconds * 1000)

    def recent_percentiles(self, variant: str) -> dict[str, Any]:
        """p50 and p99 in ms of the variant's last ``RECENT_REQUESTS`` request times, and how many there were."""
        with self.recent_lock:
            samples = list(self.recent_ms.get(variant, ()))
        if not samples:
            return {"p50_ms": None, "p99_ms": None, "recent_requests": 0}
        p50, p99 = np.percentile(samples, [50, 99])
        return {"p50_ms": round(float(p50), 3), "p99_ms": round(float(p99), 3), "recent_requests": len(samples)}

    @contextmanager
    def stage(self, variant: str, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.latency.labels(variant, stage).observe(time.perf_counter() - started)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per variant: requests by status, p50/p99 of its recent total request times and queue depth; the JSON
        behind the page's live view."""
        out: dict[str, dict[str, Any]] = {}

        def entry(variant: str) -> dict[str, Any]:
            return out.setdefault(variant, {"requests": {}, "queue_depth": 0, **self.recent_percentiles(variant)})

        for metric in self.registry.collect():
            for sample in metric.samples:
                labels = sample.labels
                if sample.name == "vitserve_requests_total":
                    entry(labels["variant"])["requests"][labels["status"]] = int(sample.value)
                elif sample.name == "vitserve_queue_depth":
                    entry(labels["variant"])["queue_depth"] = int(sample.value)
        with self.recent_lock:
            timed = list(self.recent_ms)
        for variant in timed:
            entry(variant)
        return out
