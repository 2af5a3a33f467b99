"""POST /predict/{variant}: one image as multipart (field `file`) or as a raw image/* body."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from build_models.errors import VitserveError
from build_models.preprocessing import decode_image, softmax
from service.dependencies import get_registry
from service.errors import UnsupportedMediaTypeError, status_of
from service.metrics import ServiceMetrics
from service.registry import ServingRegistry

router = APIRouter(tags=["predict"])

RAW_TYPES = ("image/", "application/octet-stream")


class Prediction(BaseModel):
    variant: str
    label: str = Field(description="the most probable class")
    score: float = Field(description="probability of `label`")
    probabilities: dict[str, float] = Field(description="probability of every class")
    model_time_ms: float = Field(description="preprocessing + forward pass time of the batch this image ran in, "
                                             "excluding decode, queueing and HTTP")


ERRORS = {
    400: {"description": "empty body or bytes that are not a decodable image"},
    413: {"description": "body over the configured limit, or an image over the pixel limit"},
    404: {"description": "unknown variant; the body lists the known ones"},
    415: {"description": "neither multipart with `file` nor an image/* body, or an image format not accepted"},
    503: {"description": "the variant is built but could not be loaded"},
}


def _part_bytes(value: str) -> bytes:
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


async def _image_bytes(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form()
        part = form.get("file")
        if part is None:
            raise UnsupportedMediaTypeError("multipart body without a `file` field")
        return _part_bytes(part) if isinstance(part, str) else await part.read()
    if not content_type.startswith(RAW_TYPES):
        raise UnsupportedMediaTypeError(
            f"unsupported content type {content_type or '(none)'!r}: send multipart/form-data with a "
            "`file` field, or the image bytes with an image/* content type")
    return await request.body()


@router.post(
    "/predict/{variant}", response_model=Prediction, responses=ERRORS,  # type: ignore[arg-type]
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
    }}},
)
async def predict(
    variant: str, request: Request, registry: ServingRegistry = Depends(get_registry),
) -> Prediction:
    metrics: ServiceMetrics = request.app.state.metrics
    status, started = 500, time.perf_counter()
    try:
        prediction = await _predict(variant, request, registry, metrics)
        status = 200
        return prediction
    except VitserveError as exc:
        status = status_of(exc)
        raise
    except HTTPException as exc:
        status = exc.status_code
        raise
    finally:
        metrics.record_request(variant, variant in registry.variants, status, started)


async def _predict(variant: str, request: Request, registry: ServingRegistry, metrics: ServiceMetrics) -> Prediction:
    registry.get(variant)  # 404 / 503 before reading the body
    max_pixels = request.app.state.settings.max_image_pixels
    data = await _image_bytes(request)
    with metrics.stage(variant, "decode"):
        image = await run_in_threadpool(decode_image, data, max_pixels)
    settings = request.app.state.settings
    logits, model_ms = await request.app.state.batchers[variant].submit(image, settings.request_timeout_s,
                                                                        request.is_disconnected)
    row = softmax(logits[None])[0]
    names = registry.manifest.data.get("label_names") or [str(i) for i in range(len(row))]
    best = int(row.argmax())
    return Prediction(
        variant=variant, label=names[best], score=float(row[best]),
        probabilities={name: float(p) for name, p in zip(names, row, strict=True)}, model_time_ms=round(model_ms, 3),
    )
