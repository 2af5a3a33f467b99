"""Prometheus metrics, one CollectorRegistry per app (so several apps in one process do not clash).

Per variant: requests by status, latency histograms by stage (decode, queue wait, inference,
total), batch sizes, queue depth, and loaded / degraded gauges. Served at GET /metrics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STAGES = ("decode", "queue_wait", "inference", "total")


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

    def record_variants(self, availability: dict[str, bool]) -> None:
        for name, available in availability.items():
            self.loaded.labels(name).set(1 if available else 0)
            self.degraded.labels(name).set(0 if available else 1)

    def record_request(self, variant: str, known: bool, status: int, started: float) -> None:
        """Count a finished request and its total time; unknown variant names are not labels (they would grow
        without bound)."""
        if known:
            self.requests.labels(variant, str(status)).inc()
            self.latency.labels(variant, "total").observe(time.perf_counter() - started)

    @contextmanager
    def stage(self, variant: str, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.latency.labels(variant, stage).observe(time.perf_counter() - started)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per variant: requests by status, p50/p99 of the total time (interpolated within histogram buckets,
        as Prometheus' histogram_quantile does) and queue depth; the JSON behind the page's live view."""
        out: dict[str, dict[str, Any]] = {}

        def entry(variant: str) -> dict[str, Any]:
            return out.setdefault(variant, {"requests": {}, "queue_depth": 0, "p50_ms": None, "p99_ms": None})

        buckets: dict[str, list[tuple[float, float]]] = {}
        for metric in self.registry.collect():
            for sample in metric.samples:
                labels = sample.labels
                if sample.name == "vitserve_requests_total":
                    entry(labels["variant"])["requests"][labels["status"]] = int(sample.value)
                elif sample.name == "vitserve_queue_depth":
                    entry(labels["variant"])["queue_depth"] = int(sample.value)
                elif sample.name == "vitserve_request_stage_seconds_bucket" and labels["stage"] == "total":
                    buckets.setdefault(labels["variant"], []).append((float(labels["le"]), sample.value))
        for variant, cumulative in buckets.items():
            cumulative.sort()
            entry(variant).update(p50_ms=_quantile_ms(cumulative, 0.5), p99_ms=_quantile_ms(cumulative, 0.99))
        return out


def _quantile_ms(cumulative: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile in ms of a cumulative histogram [(upper bound s, count)], linear within a bucket."""
    total = cumulative[-1][1] if cumulative else 0
    if not total:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in cumulative:
        if count >= rank:
            if math.isinf(upper):
                return round(lower * 1000, 3)
            share = (rank - below) / (count - below) if count > below else 1.0
            return round((lower + (upper - lower) * share) * 1000, 3)
        lower, below = upper, count
    return round(lower * 1000, 3)
