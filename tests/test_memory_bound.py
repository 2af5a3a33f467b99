"""The whole process's memory stays within what its settings allow: every variant served, many large bodies at
once against a real ``python -m service``, the byte budget shared by all variants (loadtests/memory_bound.py)."""

from __future__ import annotations

from loadtests.memory_bound import run


def test_many_large_bodies_at_once_keep_rss_below_the_bound_and_every_request_ends_200(smoke_artifacts, tmp_path):
    result = run(smoke_artifacts, tmp_path / "service.log", clients=32, requests=32)
    assert result["variants"] == 17
    assert result["peak_mb"] <= result["bound_mb"], result
    assert result["final_status"] == {200: 32}, result  # 503s were retried; nothing else went wrong
    assert set(result["every_answer"]) <= {200, 503}, result
    assert result["every_answer"].get(503, 0) > 0, result  # the budget was reached: this ran at the limit
