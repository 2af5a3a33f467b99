"""The whole process's memory stays within what its settings allow: every variant served, many large bodies at
once against a real ``python -m service``, the byte budget shared by all variants (loadtests/memory_bound.py)."""

from __future__ import annotations

from loadtests.memory_bound import run
from tests.fake_app import fake_client, png_bytes
from vitcore.catalogue import list_variants


def test_many_large_bodies_at_once_keep_rss_below_the_bound_and_every_request_ends_200(smoke_artifacts, tmp_path):
    result = run(smoke_artifacts, tmp_path / "service.log", clients=32, requests=32)
    assert result["variants"] == len(list_variants())  # every variant of the catalogue served
    assert result["peak_mb"] <= result["bound_mb"], result
    assert result["final_status"] == {200: 32}, result  # 503s were retried; nothing else went wrong
    assert set(result["every_answer"]) <= {200, 503}, result
    assert result["every_answer"].get(503, 0) > 0, result  # the budget was reached: this ran at the limit


def test_a_body_is_admitted_on_the_shared_budget_before_it_is_read_and_a_chunked_one_as_it_arrives(tmp_path):
    image = png_bytes((64, 64))
    with fake_client(tmp_path, max_body_bytes=1 << 16, max_queued_bytes=3 << 16, startup_timing_s=0) as client:
        budget = client.app.state.byte_budget
        assert client.post("/predict/plain", content=image, headers={"content-type": "image/png"}).status_code == 200
        assert budget.held == 0  # released once answered
        budget.held = budget.limit - 10  # the rest of the process holds nearly all of it
        declared = client.post("/predict/plain", content=image, headers={"content-type": "image/png"})
        chunked = client.post("/predict/plain", content=iter([image[:100], image[100:]]),
                              headers={"content-type": "image/png"})
        budget.held = 0
    assert declared.status_code == 503 and declared.headers["retry-after"] == "1"
    assert declared.json()["error"]["code"] == "queue_full"
    assert chunked.status_code == 503 and chunked.json()["error"]["code"] == "queue_full"
