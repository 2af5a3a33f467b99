"""Hypothesis strategies for tests/test_fuzz.py: hostile bodies for /predict and the V2 infer endpoint."""

from __future__ import annotations

import base64
import copy
import io
import struct
import zlib
from typing import Any

from hypothesis import strategies as st
from PIL import Image

from service.v2_codec import join_bytes_tensor
from tests.fake_app import SIZE, png_bytes

Part = tuple[str, str | None, str | None, bytes]

header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20)
nasty_values: st.SearchStrategy[Any] = json_values | st.sampled_from([
    [], {}, "", 0, -1, 2**31, 2**63, 2**64 + 1, 10**400, 1e308, -0.0, True, None, [[]], [-1, 3, SIZE, SIZE],
    [2**40, 2**40, 1, 1], [0, 2**62, 2**62, 1], "IMAGE", "PIXELS", "BYTES", "FP32", "LOGITS", "PROBABILITIES",
]).map(copy.deepcopy)


def _encoded(format_: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((24, 16)).convert("RGB").save(buffer, format=format_, **options)
    return buffer.getvalue()


def _exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated, so decoding runs exif_transpose
    return _encoded("JPEG", exif=exif.tobytes())


IMAGES = [png_bytes(), _encoded("JPEG"), _exif_jpeg(), _encoded("GIF"), _encoded("BMP"), _encoded("WEBP"),
          _encoded("TIFF")]


@st.composite
def corrupted_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(IMAGES)))
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut] if draw(st.booleans()) else data)


payloads = st.binary(max_size=2048) | corrupted_images() | st.sampled_from(IMAGES)
content_types = st.sampled_from(["image/png", "image/jpeg", "image/anything", "application/octet-stream",
                                 "multipart/form-data", "multipart/form-data; boundary=xyz", "application/json",
                                 "text/plain", ""]) | header_text
# /predict/auto's query parameters (max_latency_ms, min_f1, prefer) as text, absent (None) or out of range.
query_values = st.none() | header_text | st.sampled_from(["0", "-1", "1e309", "nan", "inf", "0.5", "8", "2",
                                                           "accuracy", "speed", "600000.1", "1e-12"])
parts = st.tuples(st.sampled_from(["file", "other", ""]) | header_text, st.none() | header_text,
                  st.none() | st.sampled_from(["image/png", "text/plain"]), payloads)


def multipart_body(boundary: str, fields: list[Part], closed: bool) -> bytes:
    body = b""
    for name, filename, part_type, payload in fields:
        disposition = f'form-data; name="{name}"' + ("" if filename is None else f'; filename="{filename}"')
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        head += "" if part_type is None else f"Content-Type: {part_type}\r\n"
        body += (head + "\r\n").encode() + payload + b"\r\n"
    return body + (f"--{boundary}--\r\n".encode() if closed else b"")


def png_with_header(width: int, height: int, depth: int, color: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PIXELS = [0.25] * 3 * SIZE * SIZE
NESTED_PIXELS = [[[[0.25 for _ in range(SIZE)] for _ in range(SIZE)] for _ in range(3)]]
JSON_REQUESTS: list[dict[str, Any]] = [
    {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [2], "data": [_b64(IMAGES[0]), _b64(IMAGES[1])]}],
     "outputs": [{"name": "PROBABILITIES", "parameters": {"classification": 1}}], "id": "a"},
    {"inputs": [{"name": "PIXELS", "datatype": "FP32", "shape": [1, 3, SIZE, SIZE], "data": PIXELS}],
     "parameters": {"binary_data_output": True}},
    {"inputs": [{"name": "PIXELS", "datatype": "FP32", "shape": [1, 3, SIZE, SIZE], "data": NESTED_PIXELS}],
     "outputs": [{"name": "LOGITS", "parameters": {"binary_data": False}}]},
]
BINARY_REQUESTS: list[tuple[dict[str, Any], bytes]] = [
    ({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                  "parameters": {"binary_data_size": len(join_bytes_tensor(IMAGES[:1]))}}],
      "parameters": {"binary_data_output": True}}, join_bytes_tensor(IMAGES[:1])),
    ({"inputs": [{"name": "PIXELS", "datatype": "FP32", "shape": [1, 3, SIZE, SIZE],
                  "parameters": {"binary_data_size": 4 * len(PIXELS)}}]}, struct.pack(f"<{len(PIXELS)}f", *PIXELS)),
]


def _mutate(node: Any, draw: st.DrawFn) -> None:
    """Replace or delete one value somewhere under ``node`` (a dict or a list)."""
    if not node:
        return
    key: Any = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
    child = node[key]
    if isinstance(child, dict | list) and child and draw(st.integers(0, 3)):
        _mutate(child, draw)
    elif draw(st.booleans()):
        del node[key]
    else:
        node[key] = draw(nasty_values)


@st.composite
def mutated(draw: st.DrawFn, valid: list[dict[str, Any]]) -> dict[str, Any]:
    """One of ``valid``, with up to three values replaced by hostile ones or deleted."""
    request = copy.deepcopy(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(0, 3))):
        _mutate(request, draw)
    return request


@st.composite
def mutated_tails(draw: st.DrawFn, tail: bytes) -> bytes:
    choice = draw(st.sampled_from(["keep", "cut", "append", "random"]))
    if choice == "cut":
        return tail[:draw(st.integers(0, len(tail)))]
    if choice == "append":
        return tail + draw(st.binary(min_size=1, max_size=64))
    return draw(st.binary(max_size=512)) if choice == "random" else tail


exact_lengths = st.sampled_from(["exact", "absent", "-1", "0", "1e3", ""])
length_headers = st.one_of(exact_lengths, exact_lengths, st.integers(-5, 5).map(str), header_text)


def length_header(choice: str, header: bytes) -> dict[str, str]:
    """Inference-Header-Content-Length: absent, exact, off by a few bytes, or any text."""
    if choice == "absent":
        return {}
    if choice == "exact" or choice.lstrip("-").isdigit() and abs(int(choice)) <= 5:
        return {"inference-header-content-length": str(len(header) + (0 if choice == "exact" else int(choice)))}
    return {"inference-header-content-length": choice}
