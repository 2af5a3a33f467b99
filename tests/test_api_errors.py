"""Every kind of bad input gets a JSON 4xx, and the server keeps serving."""

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import ServiceSettings


def _assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [(b"", "image/jpeg"), (b"definitely not an image", "image/png"), (b"\xff\xd8\xff\xe0" + b"\0" * 99, "image/jpeg")],
)
def test_undecodable_bodies_get_400(client, payload, content_type):
    _assert_error(client.post("/predict/plain", content=payload, headers={"content-type": content_type}),
                  400, "invalid_image")


def test_empty_multipart_file_gets_400(client):
    _assert_error(client.post("/predict/plain", files={"file": ("x.jpg", b"", "image/jpeg")}), 400, "invalid_image")


def test_truncated_jpeg_gets_400(client, test_split_jpegs):
    _, jpeg = test_split_jpegs[0]
    response = client.post("/predict/plain", files={"file": ("x.jpg", jpeg[: len(jpeg) // 2], "image/jpeg")})
    _assert_error(response, 400, "invalid_image")


def test_wrong_content_type_gets_415(client):
    _assert_error(client.post("/predict/plain", json={"image": "x"}), 415, "unsupported_media_type")
    _assert_error(client.post("/predict/plain", content=b"abc", headers={"content-type": "text/plain"}),
                  415, "unsupported_media_type")
    _assert_error(client.post("/predict/plain", data={"other": "field"}, files={"wrong": ("a", b"b")}),
                  415, "unsupported_media_type")


def test_unknown_variant_gets_404_listing_known(client, test_split_jpegs):
    response = client.post("/predict/nope", files={"file": ("x.jpg", test_split_jpegs[0][1], "image/jpeg")})
    _assert_error(response, 404, "unknown_variant")
    assert "plain" in response.json()["error"]["known_variants"]


def test_body_over_limit_gets_413(smoke_artifacts, test_split_jpegs):
    settings = ServiceSettings(artifacts_dir=smoke_artifacts, max_body_bytes=2048, variants="plain")
    with TestClient(create_app(settings)) as small:
        big = test_split_jpegs[0][1] * 4
        assert len(big) > 2048
        _assert_error(small.post("/predict/plain", content=big, headers={"content-type": "image/jpeg"}),
                      413, "body_too_large")
        _assert_error(small.post("/predict/plain", files={"file": ("x.jpg", big, "image/jpeg")}),
                      413, "body_too_large")

        def chunks():
            yield big[:1500]
            yield big[1500:]

        response = small.post("/predict/plain", content=chunks(), headers={"content-type": "image/jpeg"})
        _assert_error(response, 413, "body_too_large")
        assert small.get("/health/live").status_code == 200


def test_server_keeps_serving_after_errors(client, test_split_jpegs):
    for _ in range(3):
        client.post("/predict/plain", content=b"junk", headers={"content-type": "image/jpeg"})
        client.post("/predict/missing", content=b"junk", headers={"content-type": "image/jpeg"})
    ok = client.post("/predict/plain", files={"file": ("x.jpg", test_split_jpegs[0][1], "image/jpeg")})
    assert ok.status_code == 200


def test_missing_manifest_is_not_ready(tmp_path):
    with TestClient(create_app(ServiceSettings(artifacts_dir=tmp_path))) as empty:
        assert empty.get("/health/live").status_code == 200
        assert empty.get("/health/ready").status_code == 503
        _assert_error(empty.post("/predict/plain", content=b"x", headers={"content-type": "image/jpeg"}),
                      503, "manifest_unavailable")


def test_unloadable_variant_gets_503_and_the_rest_keep_serving(smoke_artifacts, test_split_jpegs, tmp_path):
    import shutil

    copy = tmp_path / "artifacts"
    shutil.copytree(smoke_artifacts, copy)
    (copy / "onnx" / "model.onnx").write_bytes(b"not an onnx graph")
    settings = ServiceSettings(artifacts_dir=copy, variants="plain,onnx")
    with TestClient(create_app(settings)) as partial:
        jpeg = test_split_jpegs[0][1]
        _assert_error(partial.post("/predict/onnx", files={"file": ("x.jpg", jpeg, "image/jpeg")}),
                      503, "variant_unavailable")
        assert partial.post("/predict/plain", files={"file": ("x.jpg", jpeg, "image/jpeg")}).status_code == 200
        assert partial.get("/health/ready").status_code == 503
        listed = {v["name"]: v for v in partial.get("/variants").json()["variants"]}
        assert listed["onnx"]["available"] is False
        assert listed["onnx"]["error"] == "artifact files do not match the manifest (see the service log)"
