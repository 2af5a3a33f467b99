"""/predict/auto, /predict/cascade, degradation and the V2 models ``auto`` and ``cascade``, against a real
uvicorn process with concurrent clients.

The smoke build's tiny ViT runs about as fast as its int8 copies, so these servers route on the latency
table the offline build measured on this host class (``docs/report-offline.json``), with start-up timing
off (``VITSERVE_STARTUP_TIMING_S=0``; routing on this host's own timings: ``test_host_timing.py``): there, only int8
variants meet a budget of a few milliseconds, which is the situation /predict/auto is for. F1 figures
and every answer are the smoke build's own.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from service.routing import QueueState, VariantFigures, expected_ms
from tests.live_server import serve
from tests.test_v2_protocol import _image_input
from vitcore.preprocessing import softmax

ROOT = Path(__file__).resolve().parent.parent
BATCH_WAIT_MS = 5.0  # the service's default max_wait_ms
BUILD_FIGURES = {"VITSERVE_STARTUP_TIMING_S": "0"}  # route on the manifest's latency table, not this host's
ROUTED = ["plain", "onnx", "ort-onnx", "openvino", "onnx-int8", "openvino-int8", "pruned-int8", "lite0-int8",
          "resnet18-int8", "distilled-lite0", "distilled-resnet18"]


@pytest.fixture(scope="module")
def routed_artifacts(smoke_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("routed") / "artifacts"
    shutil.copytree(smoke_artifacts, root, ignore=shutil.ignore_patterns(".work"))
    manifest = json.loads((root / "manifest.json").read_text())
    measured = json.loads((ROOT / "docs" / "report-offline.json").read_text())["latency"]["results"]
    manifest["latency"]["results"] = {name: measured[name] for name in manifest["variants"] if name in measured}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _variants(root: Path) -> str:
    cascade = json.loads((root / "manifest.json").read_text())["cascade"]
    return ",".join(sorted({*ROUTED, cascade["first"], cascade["then"]}))


@pytest.fixture(scope="module")
def server(routed_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("routed-log") / "service.log"
    with serve(routed_artifacts, log, _variants(routed_artifacts), BUILD_FIGURES) as url:
        yield url


def int8_only_budget(root: Path, images: int = 1) -> float:
    """Just below the idle expectation of the fastest variant that is not int8, for a request of ``images``."""
    manifest = json.loads((root / "manifest.json").read_text())
    idle = QueueState(0, BATCH_WAIT_MS)
    expectations = {}
    for name, result in manifest["latency"]["results"].items():
        figures = VariantFigures(name, 0.0, result["end_to_end"]["mean_ms"], result["model"]["mean_ms"])
        expectations[name] = expected_ms(figures, idle if name != "dynamic-quant" else None, [0] * images)
    budget = min(ms for name, ms in expectations.items() if not name.endswith("-int8") and name in ROUTED) - 0.01
    assert any(ms <= budget for name, ms in expectations.items() if name.endswith("-int8"))
    return budget


def _post(url: str, path: str, jpeg: bytes, **params: Any) -> httpx.Response:
    return httpx.post(f"{url}{path}", params=params, files={"file": ("x.jpg", jpeg, "image/jpeg")}, timeout=60)


def test_auto_with_a_budget_only_int8_meets_routes_to_int8_under_concurrent_clients(
        server, routed_artifacts, test_split_jpegs):
    budget = int8_only_budget(routed_artifacts)
    jpegs = [data for _, data in test_split_jpegs[:40]]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda j: _post(server, "/predict/auto", j, max_latency_ms=budget), jpegs))
    served = [a.json() for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert len(served) >= len(answers) // 2
    assert all(s["variant"].endswith("-int8") and s["routing"]["variant"] == s["variant"] for s in served)
    assert all(s["routing"]["reason"] == "most_accurate_within_budget" for s in served)
    assert all(s["routing"]["expected_ms"] <= budget for s in served)
    for answer in refused:  # busy now: 503 with Retry-After, never another error
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
        assert answer.json()["error"]["code"] == "no_variant_within_budget"
    metrics = httpx.get(f"{server}/metrics", timeout=10).text
    chosen = {s["variant"] for s in served}
    for variant in chosen:
        labels = f'reason="most_accurate_within_budget",route="auto",variant="{variant}"'
        assert f"vitserve_route_choices_total{{{labels}}}" in metrics


def test_auto_without_constraints_answers_with_the_most_accurate_variant(server, routed_artifacts, test_split_jpegs):
    manifest = json.loads((routed_artifacts / "manifest.json").read_text())
    loaded = _variants(routed_artifacts).split(",")
    best_f1 = max(manifest["variants"][n]["validation"]["f1"] for n in loaded)  # what it chooses on
    answer = _post(server, "/predict/auto", test_split_jpegs[0][1]).json()
    assert answer["routing"]["reason"] == "most_accurate"
    chosen = manifest["variants"][answer["variant"]]
    assert chosen["validation"]["f1"] == best_f1 and answer["routing"]["chosen_on_f1"] == round(best_f1, 4)
    assert answer["routing"]["measured_f1"] == round(chosen["metrics"]["f1"], 4)  # reported: its test F1


@pytest.mark.parametrize(("params", "status", "code"), [
    ({"max_latency_ms": 0.5}, 422, "impossible_constraints"), ({"min_f1": 1.0}, 422, "impossible_constraints"),
    ({"min_f1": 2}, 422, "validation_error"), ({"prefer": "cheap"}, 422, "validation_error"),
    ({"max_latency_ms": "soon"}, 422, "validation_error")])
def test_auto_refuses_impossible_or_malformed_constraints(server, test_split_jpegs, params, status, code):
    answer = _post(server, "/predict/auto", test_split_jpegs[0][1], **params)
    assert answer.status_code == status and answer.json()["error"]["code"] == code


MARGIN = 0.02  # calibrated top probability this far from the threshold: served within 1e-5 of the build's


def photos_by_cascade_outcome(root: Path, count: int) -> dict[bool, list[int]]:
    """Test-split indices the build's recorded probabilities of the first variant say escalate (True) or answer
    confidently (False), the first ``count`` of each, keeping clear of the threshold."""
    from build_models.measure.evaluate import read_predictions
    from vitcore.cascade import temperature_scaled

    cascade = json.loads((root / "manifest.json").read_text())["cascade"]
    _, recorded = read_predictions(root / "eval" / f"{cascade['first']}.json")
    top = temperature_scaled(recorded, cascade["temperatures"][cascade["first"]]).max(axis=1)
    return {True: [int(i) for i in np.flatnonzero(top < cascade["threshold"] - MARGIN)[:count]],
            False: [int(i) for i in np.flatnonzero(top > cascade["threshold"] + MARGIN)[:count]]}


def test_cascade_answers_from_the_first_variant_when_confident_else_escalates(server, routed_artifacts,
                                                                            test_split_jpegs):
    cascade = httpx.get(f"{server}/variants", timeout=10).json()["cascade"]
    assert {"first", "then", "threshold", "validation", "test", "temperatures"} <= set(cascade)
    chosen = photos_by_cascade_outcome(routed_artifacts, 4)
    assert len(chosen[True]) == len(chosen[False]) == 4  # the smoke split has both kinds
    for escalates, indices in chosen.items():
        for index in indices:
            jpeg = test_split_jpegs[index][1]
            answer = _post(server, "/predict/cascade", jpeg).json()
            routing = answer["routing"]
            assert routing["escalated"] is escalates, (index, routing)
            assert (routing["first_calibrated_score"] < cascade["threshold"]) is escalates
            assert answer["variant"] == (cascade["then"] if escalates else cascade["first"])
            direct = _post(server, f"/predict/{answer['variant']}", jpeg).json()
            logits = np.log(np.asarray(list(direct["probabilities"].values())))
            calibrated = softmax((logits / cascade["temperatures"][answer["variant"]])[None])[0]
            np.testing.assert_allclose(list(answer["probabilities"].values()), calibrated, atol=1e-4)


@pytest.fixture(scope="module")
def triton_client(server) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(server.removeprefix("http://"), concurrency=4, network_timeout=120)
    yield client
    client.close()


def test_v2_auto_and_cascade_models_through_tritonclient(triton_client, routed_artifacts, test_split_jpegs):
    jpegs = [data for _, data in test_split_jpegs[:3]]
    assert triton_client.is_model_ready("auto") and triton_client.is_model_ready("cascade")
    budget = int8_only_budget(routed_artifacts, images=len(jpegs))  # one expectation for the whole request
    result = triton_client.infer("auto", [_image_input(jpegs)], parameters={"max_latency_ms": budget})
    parameters = result.get_response()["parameters"]
    assert parameters["reason"] == "most_accurate_within_budget"
    assert all(v.endswith("-int8") for v in parameters["variants"].split(","))
    assert result.as_numpy("PROBABILITIES").shape == (3, 2)
    cascade = json.loads((routed_artifacts / "manifest.json").read_text())["cascade"]
    result = triton_client.infer("cascade", [_image_input(jpegs)])
    answered = result.get_response()["parameters"]["variants"].split(",")
    assert len(answered) == 3 and set(answered) <= {cascade["first"], cascade["then"]}
    np.testing.assert_allclose(result.as_numpy("PROBABILITIES").sum(1), 1.0, atol=1e-5)
    with pytest.raises(InferenceServerException, match="min_f1"):
        triton_client.infer("auto", [_image_input(jpegs)], parameters={"min_f1": "high"})
    with pytest.raises(InferenceServerException, match="above every loaded variant"):
        triton_client.infer("auto", [_image_input(jpegs)], parameters={"min_f1": 1.0})


def test_degradation_serves_a_saturated_variant_from_a_cheaper_one_only_when_allowed(
        routed_artifacts, tmp_path, test_split_jpegs):
    manifest = json.loads((routed_artifacts / "manifest.json").read_text())
    slowest = max(ROUTED, key=lambda n: manifest["latency"]["results"][n]["end_to_end"]["mean_ms"])
    settings = {"VITSERVE_DEGRADE": "1", "VITSERVE_QUEUE_SIZE": "1", "VITSERVE_DEGRADE_F1_MARGIN": "1.0",
                **BUILD_FIGURES}
    jpegs = [data for _, data in test_split_jpegs[:48]]
    with serve(routed_artifacts, tmp_path / "service.log", ",".join(ROUTED), settings) as url, \
            ThreadPoolExecutor(8) as pool:
        allowed = list(pool.map(lambda j: _post(url, f"/predict/{slowest}", j, allow_degrade="true"), jpegs))
        named = list(pool.map(lambda j: _post(url, f"/predict/{slowest}", j), jpegs))
    degraded = [a.json() for a in allowed if a.status_code == 200 and a.json()["degraded_from"]]
    assert degraded, "8 clients on a queue of 1: some requests must have been degraded"
    assert all(d["degraded_from"] == slowest and d["variant"] != slowest for d in degraded)
    assert all(a.status_code in (200, 503) for a in allowed + named)
    assert all(a.json()["variant"] == slowest and a.json()["degraded_from"] is None
               for a in named if a.status_code == 200)
