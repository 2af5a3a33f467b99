"""The Open Inference Protocol V2, spoken to a real uvicorn process by the official client, tritonclient[http]."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image
from tritonclient.utils import InferenceServerException

from build_models.preprocessing import PreprocessConfig, preprocess, softmax
from service.v2_protocol import InferenceRequestError, join_bytes_tensor, parse_infer_request, split_bytes_tensor
from tests.live_server import serve

VARIANTS = "plain,onnx,transformers-pipeline"


@pytest.fixture(scope="module")
def server(smoke_artifacts, tmp_path_factory) -> Iterator[str]:
    with serve(smoke_artifacts, tmp_path_factory.mktemp("v2") / "service.log", VARIANTS) as url:
        yield url.removeprefix("http://")


@pytest.fixture(scope="module")
def triton_client(server) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(server, concurrency=8, network_timeout=120)
    yield client
    client.close()


def _image_input(jpegs: list[bytes]) -> triton.InferInput:
    tensor = triton.InferInput("IMAGE", [len(jpegs)], "BYTES")
    tensor.set_data_from_numpy(np.array(jpegs, dtype=np.object_))
    return tensor


def _outputs(binary: bool = True, classification: int = 0) -> list[triton.InferRequestedOutput]:
    return [triton.InferRequestedOutput(name, binary_data=binary, class_count=classification)
            for name in ("LOGITS", "PROBABILITIES")]


def test_server_and_model_metadata(triton_client, smoke_artifacts):
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert set(triton_client.get_server_metadata()["extensions"]) >= {"binary_tensor_data", "classification"}
    size = PreprocessConfig.from_dir(smoke_artifacts / "plain")
    for model in VARIANTS.split(","):
        assert triton_client.is_model_ready(model)
        metadata = triton_client.get_model_metadata(model)
        inputs = {tensor["name"]: tensor for tensor in metadata["inputs"]}
        assert inputs["PIXELS"]["shape"] == [-1, 3, size.height, size.width] and inputs["IMAGE"]["datatype"] == "BYTES"
        assert [o["name"] for o in metadata["outputs"]] == ["LOGITS", "PROBABILITIES"]
    assert not triton_client.is_model_ready("no-such-variant")


@pytest.mark.parametrize("model", VARIANTS.split(","))
@pytest.mark.parametrize("binary", [True, False])
def test_encoded_images_match_predict(triton_client, server, test_split_jpegs, model, binary):
    jpegs = [data for _, data in test_split_jpegs[:4]]
    result = triton_client.infer(model, [_image_input(jpegs)], outputs=_outputs(binary))
    probabilities, logits = result.as_numpy("PROBABILITIES"), result.as_numpy("LOGITS")
    assert probabilities.shape == logits.shape == (4, 2)
    np.testing.assert_allclose(softmax(logits), probabilities, atol=1e-6)
    for row, jpeg in zip(probabilities, jpegs, strict=True):
        answer = httpx.post(f"http://{server}/predict/{model}", files={"file": ("x.jpg", jpeg, "image/jpeg")},
                            timeout=60).json()
        np.testing.assert_allclose(row, list(answer["probabilities"].values()), atol=1e-5)


def test_preprocessed_pixels_give_the_same_logits_as_images(triton_client, smoke_artifacts, test_split_jpegs):
    jpegs = [data for _, data in test_split_jpegs[:3]]
    images = [Image.open(io.BytesIO(j)).convert("RGB") for j in jpegs]
    pixels = preprocess(images, PreprocessConfig.from_dir(smoke_artifacts / "plain"))
    tensor = triton.InferInput("PIXELS", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels)
    from_pixels = triton_client.infer("onnx", [tensor]).as_numpy("LOGITS")
    from_images = triton_client.infer("onnx", [_image_input(jpegs)]).as_numpy("LOGITS")
    np.testing.assert_allclose(from_pixels, from_images, atol=1e-5)


def test_classification_extension(triton_client, test_split_jpegs):
    jpegs = [data for _, data in test_split_jpegs[:3]]
    result = triton_client.infer("plain", [_image_input(jpegs)], outputs=_outputs(classification=2))
    classes = result.as_numpy("PROBABILITIES")
    assert classes.shape == (3, 2)
    plain = triton_client.infer("plain", [_image_input(jpegs)]).as_numpy("PROBABILITIES")
    for row, probabilities in zip(classes, plain, strict=True):
        best = row[0].decode().split(":")
        assert int(best[1]) == int(probabilities.argmax()) and best[2] == ["cat", "dog"][int(best[1])]
        assert abs(float(best[0]) - probabilities.max()) < 1e-5 and float(best[0]) >= float(row[1].split(b":")[0])


def test_concurrent_clients_get_their_own_answers(triton_client, test_split_jpegs):
    jpegs = [data for _, data in test_split_jpegs[:16]]
    alone = [triton_client.infer("plain", [_image_input([j])]).as_numpy("PROBABILITIES")[0] for j in jpegs]
    pending = [triton_client.async_infer("plain", [_image_input([j])]) for j in jpegs]
    together = [p.get_result(timeout=120).as_numpy("PROBABILITIES")[0] for p in pending]
    np.testing.assert_allclose(np.stack(together), np.stack(alone), atol=1e-5)


@pytest.mark.parametrize(("make_input", "status", "words"), [
    (lambda: _image_input([b"not an image"]), "400", "image"),
    (lambda: _pixels([1, 3, 8, 8]), "400", "shape"),
    (lambda: _pixels([0, 3, 8, 8]), "400", "between 1 and"),
])
def test_bad_requests_get_v2_errors(triton_client, make_input, status, words):
    with pytest.raises(InferenceServerException) as caught:
        triton_client.infer("plain", [make_input()])
    assert caught.value.status() == status and words in caught.value.message()
    assert triton_client.is_server_live()


def _pixels(shape: list[int]) -> triton.InferInput:
    tensor = triton.InferInput("PIXELS", shape, "FP32")
    tensor.set_data_from_numpy(np.zeros(shape, dtype=np.float32))
    return tensor


def test_unknown_model_and_malformed_json_are_4xx_in_the_v2_shape(triton_client, server):
    with pytest.raises(InferenceServerException) as caught:
        triton_client.infer("no-such-variant", [_image_input([b"x"])])
    assert caught.value.status() == "404" and "no-such-variant" in caught.value.message()
    response = httpx.post(f"http://{server}/v2/models/plain/infer", content=b"{not json", timeout=30)
    assert response.status_code == 400 and isinstance(response.json()["error"], str)
    response = httpx.post(f"http://{server}/v2/models/plain/infer",
                          json={"inputs": [{"name": "OTHER", "datatype": "FP32", "shape": [1], "data": [1.0]}]})
    assert response.status_code == 400 and "unknown input 'OTHER'" in response.json()["error"]


def test_json_bytes_are_base64_images(server, test_split_jpegs):
    import base64

    jpeg = test_split_jpegs[0][1]
    body = {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(jpeg).decode()]}],
            "outputs": [{"name": "PROBABILITIES", "parameters": {"classification": 1}}]}
    answer = httpx.post(f"http://{server}/v2/models/plain/infer", json=body, timeout=60).json()
    assert answer["outputs"][0]["datatype"] == "BYTES" and answer["outputs"][0]["data"][0].split(":")[2] in (
        "cat", "dog")


def test_bytes_tensor_round_trip_and_truncation():
    items = [b"", b"abc", bytes(range(256))]
    assert split_bytes_tensor(join_bytes_tensor(items)) == items
    with pytest.raises(InferenceRequestError, match="truncated"):
        split_bytes_tensor(join_bytes_tensor(items)[:-1])
    header = (b'{"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], '
              b'"parameters": {"binary_data_size": 9}}]}')
    with pytest.raises(InferenceRequestError, match="does not fit"):
        parse_infer_request(header + b"\0\0\0\5abc", str(len(header)))
