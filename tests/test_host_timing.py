"""/predict/auto routes on this host's own timings: measured at start-up with the service's thread settings,
shown next to the build's in /variants, re-timed by /benchmark; and it answers 503 when it has nothing to
route on."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import service.registry
from service.app import create_app
from service.routing import Constraints, QueueState, choose_variant, figures_from_manifest
from service.settings import ServiceSettings
from tests.fake_app import fake_client, png_bytes
from vitcore.loading import load_predictor
from vitcore.manifest import selection_f1

CANDIDATES = ("openvino-int8", "onnx", "onnx-int8")  # quick to load; their F1s differ by CPU class
SLOW_S = 0.15  # added to the accurate variant's forward pass while ``slowed`` is set: a host slower than the build's
BUDGET_MS = 100.0


@pytest.fixture(scope="module")
def slowed() -> threading.Event:
    return threading.Event()


@pytest.fixture(scope="module")
def pair(smoke_artifacts: Path) -> tuple[str, str]:
    """(accurate, other): the candidate with the best F1 the router chooses on (validation) and one with a lower
    one, read from this build."""
    manifest = json.loads((smoke_artifacts / "manifest.json").read_text())
    f1 = {name: selection_f1(manifest, name) for name in CANDIDATES}
    accurate = max(CANDIDATES, key=f1.__getitem__)
    others = [name for name in CANDIDATES if f1[name] < f1[accurate]]
    assert others, f"the smoke build's candidates all score the same F1: {f1}"
    return accurate, others[0]


@pytest.fixture(scope="module")
def client(smoke_artifacts: Path, slowed: threading.Event, pair: tuple[str, str]) -> Iterator[TestClient]:
    """The app on the pair, the accurate one's forward slowed (while ``slowed`` is set) by a test-only wrapper."""
    accurate, other = pair

    def load(manifest, name, threads, verify=True):  # type: ignore[no-untyped-def]
        predictor = load_predictor(manifest, name, threads, verify=verify)
        if name == accurate:
            forward = predictor.forward

            def slow_forward(batch):  # type: ignore[no-untyped-def]
                if slowed.is_set():
                    time.sleep(SLOW_S)
                return forward(batch)

            predictor.forward = slow_forward  # type: ignore[method-assign]
        return predictor

    slowed.set()
    settings = ServiceSettings(artifacts_dir=smoke_artifacts, variants=f"{accurate},{other}", startup_timing_s=4,
                               benchmark_enabled=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service.registry, "load_predictor", load)
        with TestClient(create_app(settings)) as test_client:
            yield test_client


def _auto(client: TestClient, jpeg: bytes) -> dict:
    answer = client.post("/predict/auto", params={"max_latency_ms": BUDGET_MS}, content=jpeg,
                         headers={"content-type": "image/jpeg"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_auto_routes_on_this_hosts_timings_and_benchmark_retimes_them(client, slowed, smoke_artifacts, pair,
                                                                       test_split_jpegs):
    accurate, other = pair
    manifest = json.loads((smoke_artifacts / "manifest.json").read_text())
    build_choice = choose_variant(figures_from_manifest(manifest, [accurate, other]),
                                  {n: QueueState(0, 5.0) for n in (accurate, other)}, Constraints(BUDGET_MS))
    assert build_choice.variant == accurate  # on the build host's figures, the accurate one meets the budget
    rows = {row["name"]: row for row in client.get("/variants").json()["variants"]}
    slow = rows[accurate]
    assert slow["routed_on"]["source"] == "serving host: start-up"
    assert slow["serving_host_latency"]["model"]["p50_ms"] >= SLOW_S * 1000  # this host: slower...
    assert slow["latency"]["model"]["p50_ms"] < SLOW_S * 1000  # ...than the build host said
    jpeg = test_split_jpegs[0][1]
    answer = _auto(client, jpeg)
    assert answer["variant"] == other and answer["routing"]["expected_ms"] <= BUDGET_MS

    slowed.clear()  # this host is fast again, but the router only knows once it re-times
    assert _auto(client, jpeg)["variant"] == other
    retimed = client.get("/benchmark", params={"variants": accurate, "runs": 7, "warmup": 1}).json()
    assert retimed["router"]["updated"] == [accurate]
    rows = {row["name"]: row for row in client.get("/variants").json()["variants"]}
    assert rows[accurate]["routed_on"]["source"] == "serving host: /benchmark"
    assert _auto(client, jpeg)["variant"] == accurate


def test_auto_has_no_figures_to_route_on_503_rest_and_v2(tmp_path):
    """The fake build has no F1 or latency figures: 503 with the reason, not 422 impossible_constraints."""
    with fake_client(tmp_path, startup_timing_s=0) as client:
        rest = client.post("/predict/auto", content=png_bytes(), headers={"content-type": "image/png"})
        v2 = client.post("/v2/models/auto/infer", json={"inputs": [{
            "name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(png_bytes()).decode()]}]})
    assert rest.status_code == 503 and rest.json()["error"]["code"] == "routing_unavailable"
    assert "latency" in rest.json()["error"]["message"]
    assert v2.status_code == 503 and "latency" in v2.json()["error"]
    listed = client.get("/variants")
    assert listed.status_code == 200 and listed.json()["routes"] == []  # nothing to route: no auto row, no 503


def test_auto_without_a_manifest_is_503_with_the_reason(tmp_path):
    with TestClient(create_app(ServiceSettings(artifacts_dir=tmp_path))) as client:
        rest = client.post("/predict/auto", content=png_bytes(), headers={"content-type": "image/png"})
        v2 = client.post("/v2/models/auto/infer", json={"inputs": [{
            "name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(png_bytes()).decode()]}]})
    assert rest.status_code == 503 and "manifest" in rest.json()["error"]["message"]
    assert v2.status_code == 503 and "manifest" in v2.json()["error"]
