"""Property-based fuzzing of the inference endpoints (/predict/<variant>, /predict/auto, /predict/cascade and the
V2 models, ``auto`` and ``cascade`` included): whatever arrives, the answer is a JSON error or a result.

Never a 5xx other than the documented 503 (saturated / unavailable) and 504 (deadline), and the server still
answers valid requests afterwards. The app is the real HTTP plumbing over a fake predictor (tests/fake_app.py).
Deterministic: derandomize=True and no example database. 3,450 generated requests in all.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fake_app import ROUTED, SIZE, VARIANT, fake_client, png_bytes
from tests.fuzz_strategies import (
    BINARY_REQUESTS,
    JSON_REQUESTS,
    Part,
    content_types,
    corrupted_images,
    header_text,
    json_values,
    length_header,
    length_headers,
    multipart_body,
    mutated,
    mutated_tails,
    parts,
    payloads,
    png_with_header,
    query_values,
)

MAX_PIXELS = 1_000_000
FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
PREDICT, INFER = f"/predict/{VARIANT}", f"/v2/models/{VARIANT}/infer"


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with fake_client(tmp_path_factory.mktemp("fuzz"), max_body_bytes=256 * 1024, max_image_pixels=MAX_PIXELS,
                     queue_size=16) as client:
        yield client


@pytest.fixture(scope="module")
def routed_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Two fake variants with measured figures and a cascade between them, so auto and cascade really route."""
    with fake_client(tmp_path_factory.mktemp("fuzz-routed"), routed=True, max_body_bytes=256 * 1024,
                     max_image_pixels=MAX_PIXELS, queue_size=16) as client:
        yield client


def _sent(response: Any) -> str:
    try:
        return repr(response.request.content[:200])
    except httpx.RequestNotRead:
        return "(a streamed body)"


def assert_handled(response: Any) -> None:
    status, answer = response.status_code, response.text[:300]
    assert status < 500 or status in (503, 504), f"{status} for {_sent(response)}: {answer}"
    if status != 200:
        assert response.headers["content-type"].startswith("application/json"), f"{_sent(response)}: {answer}"
        body = response.json()
        assert isinstance(body, dict) and body.get("error"), f"{status} for {_sent(response)}: {answer}"


def assert_still_serves(client: TestClient) -> None:
    answer = client.post(PREDICT, files={"file": ("x.png", png_bytes(), "image/png")})
    assert answer.status_code == 200 and set(answer.json()["probabilities"]) == {"cat", "dog"}, answer.text
    pixels = {"name": "PIXELS", "datatype": "FP32", "shape": [1, 3, SIZE, SIZE], "data": [0.5] * 3 * SIZE * SIZE}
    answer = client.post(INFER, json={"inputs": [pixels]})
    assert answer.status_code == 200 and answer.json()["outputs"][0]["shape"] == [1, 2], answer.text


def assert_routes_still_serve(client: TestClient) -> None:
    for route in ("auto", "cascade"):
        answer = client.post(f"/predict/{route}", files={"file": ("x.png", png_bytes(), "image/png")})
        assert answer.status_code == 200, answer.text
        assert answer.json()["variant"] in ROUTED and answer.json()["routing"], answer.text
        image = {"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                 "data": [base64.b64encode(png_bytes()).decode()]}
        answer = client.post(f"/v2/models/{route}/infer", json={"inputs": [image]})
        assert answer.status_code == 200 and answer.json()["outputs"][0]["shape"] == [1, 2], answer.text


def test_predict_random_bodies_and_content_types(fuzz_client):
    @settings(FUZZ, max_examples=400)
    @given(body=payloads, content_type=content_types)
    def fuzz(body: bytes, content_type: str) -> None:
        assert_handled(fuzz_client.post(PREDICT, content=body, headers={"content-type": content_type}))

    fuzz()
    assert_still_serves(fuzz_client)


def test_predict_corrupt_and_truncated_images(fuzz_client):
    @settings(FUZZ, max_examples=350)
    @given(image=corrupted_images(), as_form=st.booleans())
    def fuzz(image: bytes, as_form: bool) -> None:
        if as_form:
            response = fuzz_client.post(PREDICT, files={"file": ("x", image, "image/png")})
        else:
            response = fuzz_client.post(PREDICT, content=image, headers={"content-type": "image/jpeg"})
        assert_handled(response)

    fuzz()
    assert_still_serves(fuzz_client)


def test_predict_multipart_shapes(fuzz_client):
    @settings(FUZZ, max_examples=300)
    @given(fields=st.lists(parts, max_size=3), closed=st.booleans(), boundary=st.sampled_from(["b0und", "other"]))
    def fuzz(fields: list[Part], closed: bool, boundary: str) -> None:
        body = multipart_body("b0und", fields, closed)
        headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
        assert_handled(fuzz_client.post(PREDICT, content=body, headers=headers))

    fuzz()
    assert_still_serves(fuzz_client)


def test_predict_huge_dimension_png_headers(fuzz_client):
    dimension = st.integers(0, 2**32 - 1) | st.integers(1, 4096)

    @settings(FUZZ, max_examples=150)
    @given(width=dimension, height=dimension, depth=st.sampled_from([1, 8, 16]) | st.integers(0, 255),
           color=st.sampled_from([0, 2, 6]) | st.integers(0, 255), idat=st.binary(max_size=64))
    def fuzz(width: int, height: int, depth: int, color: int, idat: bytes) -> None:
        response = fuzz_client.post(PREDICT, content=png_with_header(width, height, depth, color, idat),
                                    headers={"content-type": "image/png"})
        assert_handled(response)
        if depth == 8 and color == 2 and 0 < width < 2**31 and 0 < height < 2**31 and width * height > MAX_PIXELS:
            assert response.status_code == 413, response.text

    fuzz()
    assert_still_serves(fuzz_client)


def test_v2_random_json_bodies(fuzz_client):
    @settings(FUZZ, max_examples=250)
    @given(header=json_values | st.fixed_dictionaries({"inputs": json_values}))
    def fuzz(header: object) -> None:
        assert_handled(fuzz_client.post(INFER, content=json.dumps(header)))

    fuzz()
    assert_still_serves(fuzz_client)


def test_v2_mutated_json_requests(fuzz_client):
    @settings(FUZZ, max_examples=500)
    @given(header=mutated(JSON_REQUESTS))
    def fuzz(header: dict[str, object]) -> None:
        assert_handled(fuzz_client.post(INFER, content=json.dumps(header)))

    fuzz()
    assert_still_serves(fuzz_client)


def test_v2_binary_tails_and_headers(fuzz_client):
    @settings(FUZZ, max_examples=300)
    @given(which=st.sampled_from(BINARY_REQUESTS), data=st.data(), length=length_headers,
           content_type=content_types, request_id=header_text)
    def fuzz(which: tuple[dict[str, Any], bytes], data: st.DataObject, length: str, content_type: str,
             request_id: str) -> None:
        header_bytes = json.dumps(data.draw(mutated([which[0]]))).encode()
        tail = data.draw(mutated_tails(which[1]))
        headers = {**length_header(length, header_bytes), "content-type": content_type, "x-request-id": request_id}
        assert_handled(fuzz_client.post(INFER, content=header_bytes + tail, headers=headers))

    fuzz()
    assert_still_serves(fuzz_client)


def test_routes_random_bodies_content_types_and_constraints(routed_client):
    @settings(FUZZ, max_examples=400)
    @given(route=st.sampled_from(["auto", "cascade"]), body=payloads, content_type=content_types, as_form=st.booleans(),
           query=st.fixed_dictionaries({}, optional={"max_latency_ms": query_values, "min_f1": query_values,
                                                     "prefer": query_values}))
    def fuzz(route: str, body: bytes, content_type: str, as_form: bool, query: dict[str, str | None]) -> None:
        params = {key: value for key, value in query.items() if value is not None}
        if as_form:
            response = routed_client.post(f"/predict/{route}", params=params, files={"file": ("x", body, content_type)})
        else:
            response = routed_client.post(f"/predict/{route}", params=params, content=body,
                                          headers={"content-type": content_type})
        assert_handled(response)

    fuzz()
    assert_routes_still_serve(routed_client)


def test_v2_auto_and_cascade_mutated_requests(routed_client):
    image = {"name": "IMAGE", "datatype": "BYTES", "shape": [2],
             "data": [base64.b64encode(png_bytes()).decode(), base64.b64encode(png_bytes((30, 20))).decode()]}
    valid = [{"inputs": [image], "parameters": {"max_latency_ms": 50.0, "min_f1": 0.5, "prefer": "speed"}},
             {"inputs": [image], "outputs": [{"name": "PROBABILITIES", "parameters": {"classification": 1}}]},
             *JSON_REQUESTS]

    @settings(FUZZ, max_examples=500)
    @given(route=st.sampled_from(["auto", "cascade"]), header=mutated(valid))
    def fuzz(route: str, header: dict[str, object]) -> None:
        assert_handled(routed_client.post(f"/v2/models/{route}/infer", content=json.dumps(header)))

    fuzz()
    assert_routes_still_serve(routed_client)


def test_v2_auto_and_cascade_binary_requests(routed_client):
    @settings(FUZZ, max_examples=300)
    @given(route=st.sampled_from(["auto", "cascade"]), which=st.sampled_from(BINARY_REQUESTS), data=st.data(),
           length=length_headers, content_type=content_types)
    def fuzz(route: str, which: tuple[dict[str, Any], bytes], data: st.DataObject, length: str,
             content_type: str) -> None:
        header_bytes = json.dumps(data.draw(mutated([which[0]]))).encode()
        tail = data.draw(mutated_tails(which[1]))
        headers = {**length_header(length, header_bytes), "content-type": content_type}
        assert_handled(routed_client.post(f"/v2/models/{route}/infer", content=header_bytes + tail, headers=headers))

    fuzz()
    assert_routes_still_serve(routed_client)


def test_valid_requests_still_succeed_after_fuzzing(fuzz_client):
    assert_still_serves(fuzz_client)
    assert fuzz_client.get("/health/ready").status_code == 200
    assert fuzz_client.get("/metrics/summary").json()["variants"][VARIANT]
