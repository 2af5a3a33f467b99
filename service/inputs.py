"""From request bytes to a model input, per request and before batching: the body within a time limit,
then admission, then a bounded number of concurrent decodes, then the variant's own preprocessing. A bad
input fails its own request (4xx) and never reaches a batch; queued work holds a preprocessed array, not
a full-resolution image."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from PIL import Image, UnidentifiedImageError

from service.batching import ModelInput
from vitcore.backends.base import Predictor
from vitcore.errors import InvalidImageError, VitserveError
from vitcore.preprocessing import decode_image

T = TypeVar("T")


class BodyTimeoutError(VitserveError):
    """The client did not send its body in time."""


class UnsupportedMediaTypeError(VitserveError):
    """Neither multipart with a `file` field nor an image/* body."""


async def read_within(reading: Awaitable[T], timeout_s: float) -> T:
    """The body, or BodyTimeoutError (408) when a slow client has not sent it within ``timeout_s``: a trickled
    body holds a connection, never a queue slot (admission comes after the body)."""
    try:
        async with asyncio.timeout(timeout_s):
            return await reading
    except TimeoutError:
        raise BodyTimeoutError(f"the request body did not arrive within {timeout_s:g} s") from None


def input_bytes(predictor: Predictor) -> int:
    """Bytes one preprocessed float32 CHW input of this variant holds."""
    config = predictor.preprocess_config
    return 3 * config.height * config.width * 4


def header_pixels(data: bytes) -> int:
    """Width x height from the image's header, without decoding its pixels (0 when the header does not say: the
    decode will refuse it with its own 4xx). /predict/auto's expectation follows it."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(image.width * image.height)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return 0


def decode_and_prepare(data: bytes, max_pixels: int, predictor: Predictor) -> ModelInput:
    image = decode_image(data, max_pixels)
    try:
        return predictor.prepare(image)
    except (ValueError, OSError) as exc:
        raise InvalidImageError("the image decoded but could not be preprocessed") from exc


async def prepare_payloads(request: Request, predictor: Predictor, payloads: Sequence[bytes]) -> list[ModelInput]:
    """Decode and preprocess encoded images, at most ``decode_concurrency`` at a time across the service."""
    slots: asyncio.Semaphore = request.app.state.decode_slots
    max_pixels: int = request.app.state.settings.max_image_pixels

    async def one(data: bytes) -> ModelInput:
        async with slots:
            return await run_in_threadpool(decode_and_prepare, data, max_pixels, predictor)

    return list(await asyncio.gather(*(one(data) for data in payloads)))


RAW_TYPES = ("image/", "application/octet-stream")


def part_bytes(value: str) -> bytes:
    """The bytes of a multipart part sent without a filename, which Starlette hands over as text.

    Starlette decodes such a part as UTF-8, or as latin-1 when that fails; image bytes are never
    valid UTF-8, so latin-1 gives them back exactly. A part that was valid UTF-8 is re-encoded so.
    """
    try:
        raw = value.encode("latin-1")
        raw.decode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8")
    except UnicodeDecodeError:
        return raw
    return raw if raw.isascii() else value.encode("utf-8")


async def image_bytes(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form()
        part = form.get("file")
        if part is None:
            raise UnsupportedMediaTypeError("multipart body without a `file` field")
        return part_bytes(part) if isinstance(part, str) else await part.read()
    if not content_type.startswith(RAW_TYPES):
        raise UnsupportedMediaTypeError(
            f"unsupported content type {content_type or '(none)'!r}: send multipart/form-data with a "
            "`file` field, or the image bytes with an image/* content type")
    return await request.body()
