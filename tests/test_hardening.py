"""Hardened decoding, the JSON catch-all, request ids, readiness by required variants, /benchmark access."""

import io
import struct
import zlib

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from service.settings import ServiceSettings


def _assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code
    return response.json()["error"]


def _encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels: a decompression bomb's signature, in 60 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


@pytest.fixture(scope="module")
def photo(test_split_jpegs):
    return Image.open(io.BytesIO(test_split_jpegs[0][1])).convert("RGB")


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_accepted_formats_are_served(client, photo, fmt):
    response = client.post("/predict/plain", content=_encoded(photo, fmt), headers={"content-type": "image/x"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("fmt", ["PPM", "ICO", "TGA"])
def test_other_pillow_formats_get_415(client, photo, fmt):
    error = _assert_error(client.post("/predict/plain", content=_encoded(photo, fmt),
                                      headers={"content-type": "image/x"}), 415, "unsupported_image_format")
    assert fmt in error["message"] or "ICO" in error["message"]


def test_decompression_bomb_gets_413_not_500(client):
    bomb = _png_header_claiming(100_000, 100_000)
    error = _assert_error(client.post("/predict/plain", content=bomb, headers={"content-type": "image/png"}),
                          413, "image_too_large")
    assert "bomb" in error["message"] or "too large" in error["message"]
    assert client.get("/health/live").status_code == 200


def test_pixel_limit_is_a_setting(smoke_artifacts, test_split_jpegs):
    settings = ServiceSettings(artifacts_dir=smoke_artifacts, variants="plain", max_image_pixels=10_000)
    with TestClient(create_app(settings)) as small:
        _assert_error(small.post("/predict/plain", content=test_split_jpegs[0][1],
                                 headers={"content-type": "image/jpeg"}), 413, "image_too_large")


def test_undecodable_bytes_do_not_echo_internal_objects(client):
    error = _assert_error(client.post("/predict/plain", content=b"junk" * 10, headers={"content-type": "image/jpeg"}),
                          400, "invalid_image")
    assert "BytesIO" not in error["message"] and "0x" not in error["message"]


def test_multipart_part_without_filename_is_read_as_the_image(client, test_split_jpegs):
    jpeg = test_split_jpegs[0][1]
    with_name = client.post("/predict/plain", files={"file": ("x.jpg", jpeg, "image/jpeg")}).json()
    boundary = "vitserve-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n").encode() + jpeg + (
        f"\r\n--{boundary}--\r\n").encode()
    without = client.post("/predict/plain", content=body,
                          headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert without.status_code == 200, without.text
    assert without.json()["probabilities"] == with_name["probabilities"]


def test_unexpected_errors_are_json_500_with_a_request_id(smoke_artifacts, test_split_jpegs, monkeypatch):
    settings = ServiceSettings(artifacts_dir=smoke_artifacts, variants="plain")
    with TestClient(create_app(settings), raise_server_exceptions=False) as broken:
        def explode(*_args, **_kwargs):
            raise RuntimeError("/secret/internal/path")

        monkeypatch.setattr(broken.app.state.batchers["plain"], "run_batch", explode)
        response = broken.post("/predict/plain", content=test_split_jpegs[0][1], headers={"content-type": "image/jpeg"})
        error = _assert_error(response, 500, "internal_error")
        assert "secret" not in response.text and error["request_id"] == response.headers["x-request-id"]
        assert broken.get("/health/live").status_code == 200


def test_request_id_is_echoed_or_made(client):
    assert client.get("/health/live", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = client.get("/health/live", headers={"x-request-id": "bad id with spaces"}).headers["x-request-id"]
    assert made != "bad id with spaces" and len(made) == 32


def test_readiness_follows_required_variants(smoke_artifacts, tmp_path):
    import shutil

    copy = tmp_path / "artifacts"
    shutil.copytree(smoke_artifacts, copy)
    (copy / "onnx" / "model.onnx").write_bytes(b"not an onnx graph")
    for required, status in (("plain", 200), ("all", 503), ("plain,onnx", 503)):
        settings = ServiceSettings(artifacts_dir=copy, variants="plain,onnx", required_variants=required)
        with TestClient(create_app(settings)) as partial:
            ready = partial.get("/health/ready")
            assert ready.status_code == status, (required, ready.text)
            assert list(ready.json()["degraded"]) == ["onnx"]
            assert partial.get("/variants").json()["degraded"].keys() == {"onnx"}


def test_a_runtime_that_is_not_installed_does_not_hold_readiness_back_unless_named(smoke_artifacts, monkeypatch):
    """An image without TensorFlow still gets ready: tf-clustered is listed unavailable, the rest serve."""
    from vitcore.catalogue import VariantSpec

    monkeypatch.setattr(VariantSpec, "missing_requirements",
                        lambda self: ["tensorflow"] if self.name == "onnx" else [])
    for required, status in (("all", 200), ("plain,onnx", 503)):
        settings = ServiceSettings(artifacts_dir=smoke_artifacts, variants="plain,onnx", required_variants=required)
        with TestClient(create_app(settings)) as app:
            ready = app.get("/health/ready")
            assert ready.status_code == status, (required, ready.text)
            assert ready.json()["degraded"] == {"onnx": "runtime not installed: tensorflow"}
            assert app.post("/predict/plain", content=b"x", headers={"content-type": "image/jpeg"}).status_code == 400


def test_benchmark_is_off_by_default_and_can_need_a_token(smoke_artifacts):
    with TestClient(create_app(ServiceSettings(artifacts_dir=smoke_artifacts, variants="plain"))) as default:
        _assert_error(default.get("/benchmark", params={"runs": 1}), 403, "benchmark_disabled")
    settings = ServiceSettings(artifacts_dir=smoke_artifacts, variants="plain", benchmark_enabled=True,
                               benchmark_token="s3cret", benchmark_max_calls=50)
    with TestClient(create_app(settings)) as guarded:
        _assert_error(guarded.get("/benchmark", params={"runs": 1}), 401, "benchmark_unauthorized")
        auth = {"authorization": "Bearer s3cret"}
        assert guarded.get("/benchmark", params={"runs": 1, "warmup": 0}, headers=auth).status_code == 200
        _assert_error(guarded.get("/benchmark", params={"runs": 30}, headers=auth), 422, "benchmark_too_large")


def test_metrics_count_requests_and_stages(client, test_split_jpegs):
    jpeg = test_split_jpegs[0][1]
    client.post("/predict/plain", content=jpeg, headers={"content-type": "image/jpeg"})
    client.post("/predict/plain", content=b"junk", headers={"content-type": "image/jpeg"})
    client.post("/predict/no-such-variant", content=jpeg, headers={"content-type": "image/jpeg"})
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['vitserve_requests_total{status="200",variant="plain"}'] >= 1
    assert samples['vitserve_requests_total{status="400",variant="plain"}'] >= 1
    assert not any("no-such-variant" in name for name in samples)
    for stage in ("decode", "queue_wait", "inference", "total"):
        assert samples[f'vitserve_request_stage_seconds_count{{stage="{stage}",variant="plain"}}'] >= 1
    assert samples['vitserve_batch_size_count{variant="plain"}'] >= 1
    assert samples['vitserve_queue_depth{variant="plain"}'] == 0
    assert samples['vitserve_variant_loaded{variant="plain"}'] == 1
    assert samples['vitserve_variant_degraded{variant="plain"}'] == 0
