"""Open Inference Protocol V2 (KServe / Triton) over REST: request parsing and response encoding.

Supports JSON tensors and the binary tensor data extension that ``tritonclient[http]`` uses by
default: the body is the JSON header (its length in ``Inference-Header-Content-Length``) followed
by each binary tensor, in input order; a BYTES tensor is a run of 4-byte little-endian lengths,
each followed by that many bytes. Also the classification extension (``parameters.classification``
on a requested output turns it into ``"score:index:label"`` strings, best first).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from build_models.errors import VitserveError

HEADER_LENGTH = "inference-header-content-length"
IMAGE_INPUT = "IMAGE"  # BYTES [N]: encoded images (JPEG, PNG, ...)
PIXELS_INPUT = "PIXELS"  # FP32 [N, 3, H, W]: the shared preprocessing's output
OUTPUTS = ("LOGITS", "PROBABILITIES")


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


def _header_and_blobs(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    if header_length is None:
        header_bytes, blobs = body, b""
    else:
        try:
            length = int(header_length)
        except ValueError:
            raise InferenceRequestError("Inference-Header-Content-Length is not an integer") from None
        if not 0 < length <= len(body):
            raise InferenceRequestError(f"Inference-Header-Content-Length {length} does not fit the "
                                        f"{len(body)}-byte body")
        header_bytes, blobs = body[:length], body[length:]
    try:
        header = json.loads(header_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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


def _element_count(shape: Any) -> int:
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InferenceRequestError(f"shape must be a list of non-negative integers, got {shape!r}")
    return int(np.prod(shape)) if shape else 1


def _json_images(data: Any) -> list[bytes]:
    flat = np.asarray(data, dtype=object).ravel().tolist()
    try:
        return [base64.b64decode(item, validate=True) for item in flat]
    except (binascii.Error, TypeError, ValueError):
        raise InferenceRequestError("JSON BYTES elements must be base64 strings of encoded images (or send them "
                                    "with the binary tensor data extension)") from None


def _read_input(spec: dict[str, Any], blobs: bytes, offset: int) -> tuple[list[bytes] | np.ndarray, int]:
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    count = _element_count(shape)
    size = (spec.get("parameters") or {}).get("binary_data_size")
    raw = None
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(blobs):
            raise InferenceRequestError(f"input {name!r}: binary_data_size {size!r} does not fit the body")
        raw, offset = blobs[offset:offset + size], offset + size
    elif "data" not in spec:
        raise InferenceRequestError(f"input {name!r} has neither data nor binary_data_size")
    if name == IMAGE_INPUT:
        if datatype != "BYTES":
            raise InferenceRequestError(f"input {IMAGE_INPUT!r} must be BYTES, got {datatype!r}")
        images = split_bytes_tensor(raw) if raw is not None else _json_images(spec["data"])
        if len(images) != count:
            raise InferenceRequestError(f"input {name!r}: shape {shape} holds {count} elements, got {len(images)}")
        return images, offset
    if name == PIXELS_INPUT:
        if datatype != "FP32":
            raise InferenceRequestError(f"input {PIXELS_INPUT!r} must be FP32, got {datatype!r}")
        if raw is not None:
            if len(raw) != 4 * count:
                raise InferenceRequestError(f"input {name!r}: shape {shape} needs {4 * count} bytes, got {len(raw)}")
            values = np.frombuffer(raw, dtype="<f4")
        else:
            try:
                values = np.asarray(spec["data"], dtype=np.float32).ravel()
            except (TypeError, ValueError):
                raise InferenceRequestError(f"input {name!r}: data must be numbers") from None
            if values.size != count:
                raise InferenceRequestError(f"input {name!r}: shape {shape} holds {count} elements, got {values.size}")
        return values.reshape(shape).astype(np.float32), offset
    raise InferenceRequestError(f"unknown input {name!r}: this model takes {IMAGE_INPUT!r} (BYTES, encoded images) "
                                f"or {PIXELS_INPUT!r} (FP32 [N,3,H,W], preprocessed)")


def _requested_outputs(header: dict[str, Any]) -> list[RequestedOutput]:
    binary_default = bool((header.get("parameters") or {}).get("binary_data_output", False))
    specs = header.get("outputs")
    if not specs:
        return [RequestedOutput(name, binary_default) for name in OUTPUTS]
    outputs = []
    for spec in specs:
        name, params = spec.get("name"), spec.get("parameters") or {}
        if name not in OUTPUTS:
            raise InferenceRequestError(f"unknown output {name!r}: this model has {', '.join(OUTPUTS)}")
        top_k = params.get("classification", 0)
        if not isinstance(top_k, int) or top_k < 0:
            raise InferenceRequestError(f"output {name!r}: classification must be a non-negative integer")
        outputs.append(RequestedOutput(name, bool(params.get("binary_data", binary_default)), top_k))
    return outputs


def parse_infer_request(body: bytes, header_length: str | None) -> InferenceRequest:
    header, blobs = _header_and_blobs(body, header_length)
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InferenceRequestError(f"send exactly one input: {IMAGE_INPUT!r} or {PIXELS_INPUT!r}")
    value, used = _read_input(inputs[0], blobs, 0)
    if used != len(blobs):
        raise InferenceRequestError(f"{len(blobs) - used} bytes of binary data follow the inputs unclaimed")
    request_id = header.get("id")
    request = InferenceRequest(id=str(request_id) if request_id is not None else None,
                               input_name=inputs[0]["name"], outputs=_requested_outputs(header))
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
                          labels: list[str]) -> tuple[bytes, dict[str, str]]:
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
    header_bytes = json.dumps(header).encode()
    if not blobs:
        return header_bytes, {"content-type": "application/json"}
    return header_bytes + b"".join(blobs), {"content-type": "application/octet-stream",
                                            "inference-header-content-length": str(len(header_bytes))}
