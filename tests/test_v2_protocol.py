"""The Open Inference Protocol V2, spoken to a real uvicorn process by the official client, tritonclient[http]."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image
from tritonclient.utils import InferenceServerException

from service.v2_codec import InferenceRequestError, join_bytes_tensor, parse_infer_request, split_bytes_tensor
from tests.fake_app import SIZE, VARIANT, fake_client
from tests.live_server import serve
from vitcore.preprocessing import PreprocessConfig, preprocess, softmax

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


def _pixels_spec(**changes) -> dict:
    return {"name": "PIXELS", "datatype": "FP32", "shape": [1, 3, 2, 2], "data": [0.5] * 12, **changes}


def _image_spec(**changes) -> dict:
    return {"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="], **changes}


MALFORMED = [
    ({"inputs": [_pixels_spec(shape=[], data=[1.0])]}, "4-d shape"),
    ({"inputs": [_pixels_spec()], "outputs": [1]}, "each of outputs must be a JSON object, got a number"),
    ({"inputs": [_pixels_spec()], "outputs": [{"name": "LOGITS", "parameters": []}]},
     "output 'LOGITS': parameters must be a JSON object, got an array"),
    ({"inputs": [_pixels_spec()], "parameters": [1]}, "the request's parameters must be a JSON object"),
    ({"inputs": [_pixels_spec()], "outputs": "LOGITS"}, "outputs must be a JSON array"),
    ({"inputs": {"name": "PIXELS"}}, "exactly one input"),
    ({"inputs": ["PIXELS"]}, "exactly one input"),
    ({"inputs": [_pixels_spec(), _pixels_spec()]}, "exactly one input"),
    ({"inputs": [_pixels_spec(parameters=[])]}, "input 'PIXELS': parameters must be a JSON object"),
    ({"inputs": [_pixels_spec(data=[[0.5] * 4] * 3)]}, "nested as its shape"),
    ({"inputs": [_pixels_spec(data=[[[[0.5] * 2] * 2] * 3, 0.5])]}, "nested as its shape"),
    ({"inputs": [_pixels_spec(data=0.5)]}, "data must be a JSON array, got a number"),
    ({"inputs": [_pixels_spec(data=["0.5"] * 12)]}, "data must be numbers"),
    ({"inputs": [_pixels_spec(data=[True] * 12)]}, "data must be numbers"),
    ({"inputs": [_pixels_spec(data=[10**400] * 12)]}, "out of the FP32 range"),
    ({"inputs": [_pixels_spec(data=[1e39] * 12)]}, "finite FP32"),
    ({"inputs": [_pixels_spec(datatype="BYTES")]}, "must be FP32"),
    ({"inputs": [_image_spec(datatype="FP32")]}, "must be BYTES"),
    ({"inputs": [_image_spec(data=[1])]}, "base64"),
    ({"inputs": [_image_spec(data=["é"])]}, "base64"),
    ({"inputs": [_image_spec(shape=[-1])]}, "non-negative integers"),
    ({"inputs": [_image_spec(shape=[True])]}, "non-negative integers"),
    ({"inputs": [_image_spec(shape="1")]}, "non-negative integers"),
    ({"inputs": [_image_spec(shape=[1] * 33)]}, "at most 32"),
    ({"inputs": [_pixels_spec(shape=[2**40, 2**40, 1, 1])]},
     "holds 1208925819614629174706176 elements, more than the limit of 2147483647"),
    ({"inputs": [_pixels_spec(shape=[0, 2**40, 2**40, 1], data=[])]}, "is too large"),
    ({"inputs": [_image_spec(shape=[2**31] * 32)]}, "holds about 2^992 elements"),
    ({"inputs": [_pixels_spec(parameters={"binary_data_size": True})]}, "binary_data_size True"),
    ({"inputs": [_pixels_spec(parameters={"binary_data_size": "48"})]}, "binary_data_size '48'"),
    ({"inputs": [_image_spec()], "id": 7}, "id must be a string, got a number"),
    ({"inputs": [_image_spec()], "outputs": [{"name": "LOGITS", "parameters": {"classification": True}}]},
     "classification must be a non-negative integer"),
    ({"inputs": [_image_spec()], "outputs": [{"name": "LOGITS", "parameters": {"binary_data": "yes"}}]},
     "binary_data must be true or false"),
    ({"inputs": [_image_spec()], "parameters": {"binary_data_output": 1}}, "binary_data_output must be true or false"),
    ({"inputs": [{**_image_spec(), "name": ["IMAGE"] * 500}]}, "unknown input ['IMAGE', 'IMAGE', 'IMAGE', 'IMAGE',"),
]
MALFORMED_BYTES = [
    (b"[" * 100_000 + b"]" * 100_000, None, "nests JSON too deeply"),
    (b'{"inputs": ' + b"1" * 5000 + b"}", None, "not valid JSON"),
    (b'{"inputs": []}', "9" * 5000, "not an integer"),
    (b"\xff\xfe{}", None, "not valid JSON"),
]


@pytest.mark.parametrize(("header", "words"), MALFORMED, ids=[words for _, words in MALFORMED])
def test_malformed_requests_are_inference_request_errors(header, words):
    with pytest.raises(InferenceRequestError) as caught:
        parse_infer_request(json.dumps(header).encode(), None)
    assert words in str(caught.value) and len(str(caught.value)) < 400


@pytest.mark.parametrize(("body", "header_length", "words"), MALFORMED_BYTES)
def test_malformed_bodies_are_inference_request_errors(body, header_length, words):
    with pytest.raises(InferenceRequestError, match=words):
        parse_infer_request(body, header_length)


def test_nested_data_and_empty_batches_parse():
    nested = [[[[0.5, 0.25]] * 2] * 3]
    request = parse_infer_request(json.dumps({"inputs": [_pixels_spec(data=nested)]}).encode(), None)
    assert request.pixels is not None and request.pixels.shape == (1, 3, 2, 2) and request.pixels[0, 2, 1, 1] == 0.25
    empty = parse_infer_request(json.dumps({"inputs": [_pixels_spec(shape=[0, 3, 2, 2], data=[])]}).encode(), None)
    assert empty.pixels is not None and empty.pixels.shape == (0, 3, 2, 2)
    nested_images = _image_spec(shape=[2, 1], data=[["aGk="], ["aGV5"]])
    images = parse_infer_request(json.dumps({"inputs": [nested_images]}).encode(), None)
    assert images.images == [b"hi", b"hey"]


def test_binary_pixels_need_a_4d_shape_and_finite_values():
    header = json.dumps({"inputs": [_pixels_spec(shape=[], data=None, parameters={"binary_data_size": 4})]}).encode()
    with pytest.raises(InferenceRequestError, match="4-d shape"):
        parse_infer_request(header + b"\0\0\0\0", str(len(header)))
    spec = _pixels_spec(shape=[1, 1, 1, 2], parameters={"binary_data_size": 8})
    del spec["data"]
    header = json.dumps({"inputs": [spec]}).encode()
    with pytest.raises(InferenceRequestError, match="finite"):
        parse_infer_request(header + np.array([0.5, np.nan], dtype="<f4").tobytes(), str(len(header)))
    request = parse_infer_request(header + np.array([0.5, 2.0], dtype="<f4").tobytes(), str(len(header)))
    assert request.pixels is not None and request.pixels.tolist() == [[[[0.5, 2.0]]]]


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> Iterator:
    with fake_client(tmp_path_factory.mktemp("v2-fake")) as client:
        yield client


@pytest.mark.parametrize(("header", "words"), MALFORMED, ids=[words for _, words in MALFORMED])
def test_malformed_requests_get_400_in_the_v2_shape(fake, header, words):
    response = fake.post(f"/v2/models/{VARIANT}/infer", content=json.dumps(header))
    assert response.status_code == 400 and words in response.json()["error"], response.text


@pytest.mark.parametrize(("body", "header_length", "words"), MALFORMED_BYTES)
def test_malformed_bodies_get_400_in_the_v2_shape(fake, body, header_length, words):
    headers = {} if header_length is None else {"inference-header-content-length": header_length}
    response = fake.post(f"/v2/models/{VARIANT}/infer", content=body, headers=headers)
    assert response.status_code == 400 and words in response.json()["error"], response.text


def test_the_fake_model_still_answers_after_the_malformed_requests(fake):
    pixels = _pixels_spec(shape=[1, 3, SIZE, SIZE], data=[0.5] * 3 * SIZE * SIZE)
    response = fake.post(f"/v2/models/{VARIANT}/infer", json={"inputs": [pixels]})
    assert response.status_code == 200 and response.json()["outputs"][0]["shape"] == [1, 2]
