"""Open Inference Protocol V2 (KServe / Triton) over REST: request parsing and response encoding.

Supports JSON tensors and the binary tensor data extension that ``tritonclient[http]`` uses by
default: the body is the JSON header (its length in ``Inference-Header-Content-Length``) followed
by each binary tensor, in input order; a BYTES tensor is a run of 4-byte little-endian lengths,
each followed by that many bytes. Also the classification extension (``parameters.classification``
on a requested output turns it into ``"score:index:label"`` strings, best first).

Over 300 lines: one protocol's parser and encoder, every shape check beside the field it checks.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import reprlib
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vitcore.errors import VitserveError

HEADER_LENGTH = "inference-header-content-length"
IMAGE_INPUT = "IMAGE"  # BYTES [N]: encoded images (JPEG, PNG, ...)
PIXELS_INPUT = "PIXELS"  # FP32 [N, 3, H, W]: the shared preprocessing's output
OUTPUTS = ("LOGITS", "PROBABILITIES")
MAX_DIMENSIONS = 32
MAX_ELEMENTS = 2**31 - 1  # per tensor; far above what a request body under the size limit can carry

_BRIEF = reprlib.Repr()
_BRIEF.maxstring = _BRIEF.maxother = 60
_BRIEF.maxlong = 40


class InferenceRequestError(VitserveError):
    """A V2 inference request that does not follow the protocol or this model's metadata."""


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool
    classification: int = 0  # top-k for the classification extension; 0 = the raw tensor


@dataclass
class InferenceRequest:
    id: str | None
    input_name: str
    images: list[bytes] = field(default_factory=list)
    pixels: np.ndarray | None = None
    outputs: list[RequestedOutput] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)  # the request's own, e.g. auto's max_latency_ms


def _header_and_blobs(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    if header_length is None:
        header_bytes, blobs = body, b""
    else:
        try:
            length = int(header_length)
        except ValueError:
            raise InferenceRequestError("Inference-Header-Content-Length is not an integer") from None
        if not 0 < length <= len(body):
            raise InferenceRequestError(f"Inference-Header-Content-Length {_brief(length)} does not fit the "
                                        f"{len(body)}-byte body")
        header_bytes, blobs = body[:length], body[length:]
    try:
        header = json.loads(header_bytes)
    except RecursionError:
        raise InferenceRequestError("the inference request nests JSON too deeply") from None
    except ValueError as exc:  # also undecodable text and integers over Python's digit limit
        raise InferenceRequestError(f"the inference request is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise InferenceRequestError("the inference request must be a JSON object")
    return header, blobs


def split_bytes_tensor(raw: bytes) -> list[bytes]:
    """A serialised BYTES tensor (4-byte little-endian length before each element) -> its elements."""
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InferenceRequestError("truncated BYTES tensor: an element length is cut off")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise InferenceRequestError("truncated BYTES tensor: an element is shorter than its length")
        items.append(raw[offset:offset + size])
        offset += size
    return items


def join_bytes_tensor(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def _brief(value: Any) -> str:
    """A client-sent value, shortened for an error message."""
    return _BRIEF.repr(value)


def _quantity(number: int) -> str:
    return str(number) if number < 10**30 else f"about 2^{number.bit_length() - 1}"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    names = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}
    return names.get(type(value), "null")


def _object(value: Any, what: str) -> dict[str, Any]:
    """``value`` when it is a JSON object, {} when it is absent or null."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InferenceRequestError(f"{what} must be a JSON object, got {_json_type(value)}")
    return value


def _flag(params: dict[str, Any], key: str, default: bool, what: str) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise InferenceRequestError(f"{what}: {key} must be true or false, got {_json_type(value)}")
    return value


def _element_count(shape: Any) -> int:
    if (not isinstance(shape, list) or len(shape) > MAX_DIMENSIONS
            or not all(type(d) is int and d >= 0 for d in shape)):
        raise InferenceRequestError(f"shape must be a list of at most {MAX_DIMENSIONS} non-negative integers, "
                                    f"got {_brief(shape)}")
    count, extent = math.prod(shape), math.prod(max(d, 1) for d in shape)
    if count > MAX_ELEMENTS:
        raise InferenceRequestError(f"shape {_brief(shape)} holds {_quantity(count)} elements, more than the "
                                    f"limit of {MAX_ELEMENTS}")
    if extent > MAX_ELEMENTS:
        raise InferenceRequestError(f"shape {_brief(shape)} is too large: its non-zero dimensions multiply to "
                                    f"{_quantity(extent)}, more than the limit of {MAX_ELEMENTS}")
    return count


def _flat_data(data: Any, shape: list[int], name: Any) -> list[Any]:
    """JSON tensor data, either flat or nested exactly as ``shape``, as one flat list."""
    if not isinstance(data, list):
        raise InferenceRequestError(f"input {_brief(name)}: data must be a JSON array, got {_json_type(data)}")
    if not any(isinstance(item, list) for item in data):
        return data
    level = [data]
    for size in shape:
        if not all(isinstance(node, list) and len(node) == size for node in level):
            break
        level = [child for node in level for child in node]
    else:
        if not any(isinstance(item, list) for item in level):
            return level
    raise InferenceRequestError(f"input {_brief(name)}: data must be a flat array, or arrays nested as its "
                                f"shape {_brief(shape)}")


def _json_images(data: Any, shape: list[int]) -> list[bytes]:
    items = _flat_data(data, shape, IMAGE_INPUT)
    try:
        if all(isinstance(item, str) for item in items):
            return [base64.b64decode(item, validate=True) for item in items]
    except (binascii.Error, ValueError):
        pass
    raise InferenceRequestError("JSON BYTES elements must be base64 strings of encoded images (or send them "
                                "with the binary tensor data extension)")


def _json_pixels(data: Any, shape: list[int]) -> np.ndarray:
    items = _flat_data(data, shape, PIXELS_INPUT)
    if not all(type(item) in (int, float) for item in items):
        raise InferenceRequestError(f"input {PIXELS_INPUT!r}: data must be numbers")
    try:
        wide = np.array(items, dtype=np.float64)
    except OverflowError:
        raise InferenceRequestError(f"input {PIXELS_INPUT!r}: a number is out of the FP32 range") from None
    with np.errstate(over="ignore"):
        return wide.astype(np.float32)


def _binary_part(spec: dict[str, Any], blobs: bytes, offset: int) -> tuple[bytes | None, int]:
    """This input's bytes from the binary tail (None when it sends JSON data) and the offset after them."""
    name = spec.get("name")
    size = _object(spec.get("parameters"), f"input {_brief(name)}: parameters").get("binary_data_size")
    if size is None:
        if "data" not in spec:
            raise InferenceRequestError(f"input {_brief(name)} has neither data nor binary_data_size")
        return None, offset
    if type(size) is not int or size < 0 or offset + size > len(blobs):
        raise InferenceRequestError(f"input {_brief(name)}: binary_data_size {_brief(size)} does not fit the body")
    return blobs[offset:offset + size], offset + size


def _read_images(spec: dict[str, Any], raw: bytes | None) -> list[bytes]:
    shape: Any = spec.get("shape")
    datatype = spec.get("datatype")
    if datatype != "BYTES":
        raise InferenceRequestError(f"input {IMAGE_INPUT!r} must be BYTES, got {_brief(datatype)}")
    count = _element_count(shape)
    images = split_bytes_tensor(raw) if raw is not None else _json_images(spec["data"], shape)
    if len(images) != count:
        raise InferenceRequestError(f"input {IMAGE_INPUT!r}: shape {shape} holds {count} elements, "
                                    f"got {len(images)}")
    return images


def _read_pixels(spec: dict[str, Any], raw: bytes | None) -> np.ndarray:
    shape: Any = spec.get("shape")
    datatype = spec.get("datatype")
    if datatype != "FP32":
        raise InferenceRequestError(f"input {PIXELS_INPUT!r} must be FP32, got {_brief(datatype)}")
    count = _element_count(shape)
    if len(shape) != 4:
        raise InferenceRequestError(f"input {PIXELS_INPUT!r} must have a 4-d shape [N,3,H,W], got shape {shape}")
    if raw is not None:
        if len(raw) != 4 * count:
            raise InferenceRequestError(f"input {PIXELS_INPUT!r}: shape {shape} needs {4 * count} bytes, "
                                        f"got {len(raw)}")
        values = np.frombuffer(raw, dtype="<f4")
    else:
        values = _json_pixels(spec["data"], shape)
        if values.size != count:
            raise InferenceRequestError(f"input {PIXELS_INPUT!r}: shape {shape} holds {count} elements, "
                                        f"got {values.size}")
    if not np.isfinite(values).all():
        raise InferenceRequestError(f"input {PIXELS_INPUT!r}: data must be finite FP32 numbers")
    return values.reshape(shape).astype(np.float32)


def _read_input(spec: dict[str, Any], blobs: bytes, offset: int) -> tuple[list[bytes] | np.ndarray, int]:
    name = spec.get("name")
    if name not in (IMAGE_INPUT, PIXELS_INPUT):
        raise InferenceRequestError(f"unknown input {_brief(name)}: this model takes {IMAGE_INPUT!r} (BYTES, "
                                    f"encoded images) or {PIXELS_INPUT!r} (FP32 [N,3,H,W], preprocessed)")
    raw, offset = _binary_part(spec, blobs, offset)
    return (_read_images(spec, raw) if name == IMAGE_INPUT else _read_pixels(spec, raw)), offset


def _requested_output(spec: Any, binary_default: bool) -> RequestedOutput:
    if not isinstance(spec, dict):
        raise InferenceRequestError(f"each of outputs must be a JSON object, got {_json_type(spec)}")
    name = spec.get("name")
    if name not in OUTPUTS:
        raise InferenceRequestError(f"unknown output {_brief(name)}: this model has {', '.join(OUTPUTS)}")
    params = _object(spec.get("parameters"), f"output {name!r}: parameters")
    top_k = params.get("classification", 0)
    if type(top_k) is not int or top_k < 0:
        raise InferenceRequestError(f"output {name!r}: classification must be a non-negative integer")
    return RequestedOutput(name, _flag(params, "binary_data", binary_default, f"output {name!r}"), top_k)


def _requested_outputs(header: dict[str, Any]) -> list[RequestedOutput]:
    params = _object(header.get("parameters"), "the request's parameters")
    binary_default = _flag(params, "binary_data_output", False, "the request's parameters")
    specs = header.get("outputs")
    if specs is None or specs == []:
        return [RequestedOutput(name, binary_default) for name in OUTPUTS]
    if not isinstance(specs, list):
        raise InferenceRequestError(f"outputs must be a JSON array of objects, got {_json_type(specs)}")
    return [_requested_output(spec, binary_default) for spec in specs]


def parse_infer_request(body: bytes, header_length: str | None) -> InferenceRequest:
    header, blobs = _header_and_blobs(body, header_length)
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InferenceRequestError(f"send exactly one input, a JSON object: {IMAGE_INPUT!r} or {PIXELS_INPUT!r}")
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InferenceRequestError(f"id must be a string, got {_json_type(request_id)}")
    outputs = _requested_outputs(header)
    value, used = _read_input(inputs[0], blobs, 0)
    if used != len(blobs):
        raise InferenceRequestError(f"{len(blobs) - used} bytes of binary data follow the inputs unclaimed")
    parameters = _object(header.get("parameters", {}), "parameters")
    request = InferenceRequest(id=request_id, input_name=inputs[0]["name"], outputs=outputs, parameters=parameters)
    if isinstance(value, np.ndarray):
        request.pixels = value
    else:
        request.images = value
    return request


def classification_strings(values: np.ndarray, top_k: int, labels: list[str]) -> list[list[bytes]]:
    order = np.argsort(-values, axis=1, kind="stable")[:, :top_k]
    return [[f"{row[i]:f}:{i}:{labels[i]}".encode() for i in ranks] for row, ranks in zip(values, order, strict=True)]


def _output_tensor(output: RequestedOutput, values: np.ndarray, labels: list[str]) -> tuple[dict[str, Any], bytes]:
    if output.classification:
        strings = classification_strings(values, min(output.classification, values.shape[1]), labels)
        spec: dict[str, Any] = {"name": output.name, "datatype": "BYTES",
                                "shape": [len(strings), len(strings[0]) if strings else 0]}
        if output.binary:
            return spec, join_bytes_tensor([s for row in strings for s in row])
        return {**spec, "data": [s.decode() for row in strings for s in row]}, b""
    spec = {"name": output.name, "datatype": "FP32", "shape": list(values.shape)}
    if output.binary:
        return spec, np.ascontiguousarray(values, dtype="<f4").tobytes()
    return {**spec, "data": values.astype(np.float32).ravel().tolist()}, b""


def encode_infer_response(model: str, request: InferenceRequest, logits: np.ndarray, probabilities: np.ndarray,
                          labels: list[str], parameters: dict[str, Any] | None = None) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers: plain JSON, or JSON + binary tensors when any output asked for binary."""
    values = {"LOGITS": logits, "PROBABILITIES": probabilities}
    tensors, blobs = [], []
    for output in request.outputs:
        spec, blob = _output_tensor(output, values[output.name], labels)
        if output.binary:
            spec["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        tensors.append(spec)
    header: dict[str, Any] = {"model_name": model, "model_version": "1", "outputs": tensors}
    if request.id is not None:
        header["id"] = request.id
    if parameters:
        header["parameters"] = parameters
    header_bytes = json.dumps(header).encode()
    if not blobs:
        return header_bytes, {"content-type": "application/json"}
    return header_bytes + b"".join(blobs), {"content-type": "application/octet-stream",
                                            "inference-header-content-length": str(len(header_bytes))}
