"""Users that post real cat and dog photos to /predict/<variant>.

Options (command line or environment):
  --variants / LOCUST_VARIANTS   "plain:3,onnx:1" (name:weight, comma-separated; default "plain")
  --images   / LOCUST_IMAGES     a folder of photos, or a parquet dataset folder
  --upscale  / LOCUST_UPSCALE    "4000x3000": post each photo resized to this size (made in memory)
  --wait-min / LOCUST_WAIT_MIN   seconds between a user's requests (default 0.1)
  --wait-max / LOCUST_WAIT_MAX   (default 0.5)
  --query    / LOCUST_QUERY      appended to every /predict URL, e.g. "allow_degrade=true"
  LOCUST_SERVED_FILE             at the end, write the /predict answers there as JSON: count by status and
                                 by the variant that answered (``loadtests.answers``)
Only loopback hosts are accepted.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any
from urllib.parse import urlparse

from locust import HttpUser, events, task

from loadtests.answers import AnswerCount
from loadtests.images import load_photos, upscaled

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_IMAGES = "../shared/datasets/cats_vs_dogs"


@events.init_command_line_parser.add_listener
def add_options(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--variants", type=str, env_var="LOCUST_VARIANTS", default="plain")
    parser.add_argument("--images", type=str, env_var="LOCUST_IMAGES", default=DEFAULT_IMAGES)
    parser.add_argument("--upscale", type=str, env_var="LOCUST_UPSCALE", default="")
    parser.add_argument("--wait-min", type=float, env_var="LOCUST_WAIT_MIN", default=0.1)
    parser.add_argument("--wait-max", type=float, env_var="LOCUST_WAIT_MAX", default=0.5)
    parser.add_argument("--bad-ratio", type=float, env_var="LOCUST_BAD_RATIO", default=0.0)
    parser.add_argument("--query", type=str, env_var="LOCUST_QUERY", default="")


ANSWERS = AnswerCount()  # every /predict answer by status, and each valid one by the variant that gave it


@events.test_stop.add_listener
def write_served(**_: Any) -> None:
    path = os.environ.get("LOCUST_SERVED_FILE")
    if path:
        with open(path, "w") as handle:
            json.dump(ANSWERS.as_dict(), handle)


def _json(response: Any) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def parse_weights(spec: str) -> tuple[list[str], list[float]]:
    names, weights = [], []
    for item in spec.split(","):
        name, _, weight = item.strip().partition(":")
        if name:
            names.append(name)
            weights.append(float(weight or 1))
    return names, weights


class PredictUser(HttpUser):
    photos: list[bytes] = []

    def wait_time(self) -> float:
        options = self.environment.parsed_options
        return random.uniform(options.wait_min, options.wait_max)

    def on_start(self) -> None:
        host = urlparse(self.host).hostname
        if host not in LOOPBACK:
            raise RuntimeError(f"load tests only target loopback, not {host!r}")
        options = self.environment.parsed_options
        self.variants, self.weights = parse_weights(options.variants)
        if not PredictUser.photos:
            photos = load_photos(options.images, 16 if options.upscale else 64)
            PredictUser.photos = upscaled(photos, options.upscale) if options.upscale else photos

    @task
    def predict(self) -> None:
        variant = random.choices(self.variants, weights=self.weights)[0]
        if random.random() < self.environment.parsed_options.bad_ratio:
            self.bad_request(variant)
            return
        photo = random.choice(self.photos)
        query = self.environment.parsed_options.query
        with self.client.post(f"/predict/{variant}" + (f"?{query}" if query else ""),
                              files={"file": ("photo.jpg", photo, "image/jpeg")},
                              name=f"/predict/{variant}", catch_response=True) as response:
            body = _json(response) if response.status_code == 200 else None
            failure = ANSWERS.record(response.status_code, body, variant)
            if failure is not None:
                response.failure(f"{failure}: {response.text[:200]}")

    def bad_request(self, variant: str) -> None:
        """A malformed request: it must get a 4xx JSON error, never a 5xx."""
        kind, body, content_type = random.choice(BAD_INPUTS)
        with self.client.post(f"/predict/{variant}", data=body, headers={"content-type": content_type},
                              name=f"bad input: {kind}", catch_response=True) as response:
            if 400 <= response.status_code < 500 and "error" in response.json():
                response.success()
            else:
                response.failure(f"HTTP {response.status_code} for {kind}")


def _png_claiming(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


BAD_INPUTS = [
    ("junk bytes", b"not an image at all" * 8, "image/jpeg"),
    ("empty body", b"", "image/jpeg"),
    ("truncated jpeg", b"\xff\xd8\xff\xe0" + b"\0" * 200, "image/jpeg"),
    ("wrong content type", b"{}", "application/json"),
    ("decompression bomb", _png_claiming(100_000, 100_000), "image/png"),
    ("unaccepted format", b"P6\n2 2\n255\n" + b"\x80" * 12, "image/x-portable-pixmap"),
]
