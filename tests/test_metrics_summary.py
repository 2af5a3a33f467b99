"""GET /metrics/summary's figures: requests by status, interpolated p50/p99, queue depth."""

import math

import pytest

from service.prometheus import ServiceMetrics, _quantile_ms


def test_quantiles_interpolate_within_buckets():
    cumulative = [(0.001, 0.0), (0.0025, 2.0), (0.005, 4.0), (math.inf, 4.0)]
    assert _quantile_ms(cumulative, 0.5) == pytest.approx(2.5)
    assert _quantile_ms(cumulative, 0.99) == pytest.approx(4.95)
    assert _quantile_ms([(0.001, 0.0), (math.inf, 0.0)], 0.5) is None
    assert _quantile_ms([(0.001, 0.0), (math.inf, 3.0)], 0.5) == pytest.approx(1.0)  # past the last finite bound


def test_summary_reads_the_apps_own_metrics():
    metrics = ServiceMetrics()
    for status in (200, 200, 200, 503):
        metrics.requests.labels("plain", str(status)).inc()
    for seconds in (0.002, 0.002, 0.002):
        metrics.latency.labels("plain", "total").observe(seconds)
    metrics.latency.labels("plain", "decode").observe(3.0)  # another stage: not in the total's quantiles
    metrics.queue_depth.labels("plain").set(2)
    summary = metrics.summary()["plain"]
    assert summary["requests"] == {"200": 3, "503": 1} and summary["queue_depth"] == 2
    assert summary["p50_ms"] == pytest.approx(1.75) and summary["p99_ms"] == pytest.approx(2.485)


def test_summary_endpoint_through_the_app(client, test_split_jpegs):
    _, jpeg = test_split_jpegs[0]
    before = client.get("/metrics/summary").json()["variants"].get("onnx", {}).get("requests", {}).get("200", 0)
    assert client.post("/predict/onnx", files={"file": ("x.jpg", jpeg, "image/jpeg")}).status_code == 200
    bad = client.post("/predict/onnx", content=b"not an image", headers={"content-type": "image/jpeg"})
    assert bad.status_code == 400
    body = client.get("/metrics/summary").json()["variants"]["onnx"]
    assert body["requests"]["200"] == before + 1 and body["requests"]["400"] >= 1
    assert body["p50_ms"] > 0 and body["p99_ms"] >= body["p50_ms"]
