"""/benchmark: shape, bounds, and one benchmark at a time (no timing assertions)."""

import threading
import time

import pytest

from service.routers import benchmark as benchmark_router

STATS = {"mean_ms", "std_ms", "p25_ms", "p50_ms", "p75_ms", "p90_ms", "p99_ms", "throughput_ips", "speedup_vs_plain",
         "overlaps_plain", "runs", "batch_size"}


def test_get_benchmark_measures_every_available_variant(client):
    response = client.get("/benchmark", params={"runs": 2, "warmup": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    available = [v["name"] for v in client.get("/variants").json()["variants"] if v["available"]]
    assert list(body["results"]) == available
    for name, row in body["results"].items():
        for mode in ("model", "end_to_end"):  # both by default, interleaved in one run
            stats = row[mode]
            assert set(stats) >= STATS, name
            assert stats["runs"] == 2 and stats["p50_ms"] > 0 and stats["throughput_ips"] > 0
    machine = body["machine"]
    assert {"torch_intra_op", "ort_intra_op", "openvino_threads", "openvino_hint", "tf_intra_op"} <= set(
        machine["threads_requested"])
    assert "flags" in machine["cpu"] and machine["cpu"]["usable_cores"] >= 1
    assert machine["applied"]["plain"]["torch_intra_op"] >= 1  # read back from torch, not echoed
    assert int(machine["applied"]["openvino"]["openvino_inference_num_threads"]) >= 1


def test_post_benchmark_end_to_end_with_batch(client):
    response = client.post("/benchmark", json={"variants": "onnx", "runs": 2, "warmup": 0, "batch_size": 3,
                                               "mode": "end_to_end"})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert list(results) == ["plain", "onnx"]  # plain is always measured alongside, for the speedup
    assert results["onnx"]["end_to_end"]["batch_size"] == 3 and "model" not in results["onnx"]


@pytest.mark.parametrize("params", [{"runs": 10_000}, {"batch_size": 1000}, {"runs": 0}, {"warmup": -1},
                                    {"mode": "fast"}])
def test_out_of_bounds_parameters_get_422(client, params):
    response = client.get("/benchmark", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert client.post("/benchmark", json=params).status_code == 422


def test_unknown_variant_in_benchmark_gets_404(client):
    assert client.get("/benchmark", params={"variants": "nope", "runs": 1}).status_code == 404


def test_second_benchmark_is_refused_while_one_runs(client):
    held = benchmark_router._one_at_a_time
    assert held.acquire(blocking=False)
    try:
        response = client.get("/benchmark", params={"runs": 1})
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "benchmark_busy"
    finally:
        held.release()
    assert client.get("/benchmark", params={"runs": 1, "variants": "plain"}).status_code == 200


def test_predict_is_served_while_a_benchmark_runs(client, test_split_jpegs):
    results = {}
    held = benchmark_router._one_at_a_time

    def long_benchmark():
        results["bench"] = client.get("/benchmark", params={"runs": 500, "warmup": 0, "variants": "plain,onnx"})

    thread = threading.Thread(target=long_benchmark)
    thread.start()
    deadline = time.monotonic() + 30
    while not held.locked() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held.locked(), "the benchmark never started"
    jpeg = test_split_jpegs[0][1]
    answers = [client.post("/predict/plain", files={"file": ("x.jpg", jpeg, "image/jpeg")}) for _ in range(5)]
    still_running = held.locked()  # all five were answered while the benchmark held its slot
    thread.join(timeout=300)
    assert all(a.status_code == 200 for a in answers)
    assert still_running, "the benchmark ended before the predictions: nothing overlapped"
    assert results["bench"].status_code == 200
