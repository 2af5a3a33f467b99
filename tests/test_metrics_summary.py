"""GET /metrics/summary's figures: requests by status, p50/p99 of recent exact request times, queue depth."""

import pytest

from service.prometheus import RECENT_REQUESTS, ServiceMetrics


def test_summary_percentiles_are_exact_over_recent_requests_not_bucket_interpolations():
    metrics = ServiceMetrics()
    for status in (200,) * 100 + (503,):
        metrics.requests.labels("plain", str(status)).inc()
    for ms in range(1, 101):  # 1, 2, ..., 100 ms: all but the first inside the histogram's 25-50-100 ms buckets
        metrics.observe_total("plain", ms / 1000)
    metrics.latency.labels("plain", "decode").observe(3.0)  # another stage: not in the total's percentiles
    metrics.queue_depth.labels("plain").set(2)
    summary = metrics.summary()["plain"]
    assert summary["requests"] == {"200": 100, "503": 1} and summary["queue_depth"] == 2
    # Linear between order statistics: the median of 1..100 is 50.5, the 99th percentile 1 + 0.99 * 99.
    assert summary["p50_ms"] == pytest.approx(50.5) and summary["p99_ms"] == pytest.approx(99.01)
    assert summary["recent_requests"] == 100


def test_only_the_most_recent_requests_count_and_variants_apart():
    metrics = ServiceMetrics()
    for _ in range(RECENT_REQUESTS):
        metrics.observe_total("onnx", 0.5)
    for _ in range(RECENT_REQUESTS):
        metrics.observe_total("onnx", 0.002)  # pushes every 500 ms sample out of the ring
    metrics.observe_total("plain", 0.010)
    summary = metrics.summary()
    assert summary["onnx"]["p99_ms"] == pytest.approx(2.0) and summary["onnx"]["recent_requests"] == RECENT_REQUESTS
    assert summary["plain"]["p50_ms"] == pytest.approx(10.0) and summary["plain"]["recent_requests"] == 1
    assert ServiceMetrics().summary() == {}


def test_summary_endpoint_through_the_app(client, test_split_jpegs):
    _, jpeg = test_split_jpegs[0]
    before = client.get("/metrics/summary").json()["variants"].get("onnx", {}).get("requests", {}).get("200", 0)
    assert client.post("/predict/onnx", files={"file": ("x.jpg", jpeg, "image/jpeg")}).status_code == 200
    bad = client.post("/predict/onnx", content=b"not an image", headers={"content-type": "image/jpeg"})
    assert bad.status_code == 400
    body = client.get("/metrics/summary").json()["variants"]["onnx"]
    assert body["requests"]["200"] == before + 1 and body["requests"]["400"] >= 1
    assert body["p50_ms"] > 0 and body["p99_ms"] >= body["p50_ms"]
