"""POST /predict/{variant}: one image as multipart (field `file`) or as a raw image/* body."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from build_models.errors import VitserveError
from build_models.preprocessing import softmax
from service.dependencies import get_registry
from service.errors import UnsupportedMediaTypeError, status_of
from service.inputs import input_bytes, prepare_payloads, read_within
from service.metrics import ServiceMetrics
from service.registry import ServingRegistry
from service.responses import error_responses

router = APIRouter(tags=["predict"])

RAW_TYPES = ("image/", "application/octet-stream")


class Prediction(BaseModel):
    variant: str
    label: str = Field(description="the most probable class")
    score: float = Field(description="probability of `label`")
    probabilities: dict[str, float] = Field(description="probability of every class")
    model_time_ms: float = Field(description="preprocessing + forward pass time of the batch this image ran in, "
                                             "excluding decode, queueing and HTTP")


ERRORS = error_responses({
    400: "empty body or bytes that are not a decodable image",
    408: "the body did not arrive within the configured time",
    413: "body over the configured limit, or an image over the pixel limit",
    404: "unknown variant; the body lists the known ones",
    415: "neither multipart with `file` nor an image/* body, or an image format not accepted",
    422: "malformed path parameters",
    499: "the client disconnected before the answer; its work was dropped",
    503: "the variant is built but could not be loaded, its queue (requests or bytes) is full, its worker "
         "restarted, or the service is draining; see Retry-After",
    504: "no answer within the configured request deadline",
})


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
    "/predict/{variant}", response_model=Prediction, responses=ERRORS,
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
    except StarletteHTTPException as exc:
        status = exc.status_code
        raise
    finally:
        metrics.record_request(variant, variant in registry.variants, status, started)


async def _predict(variant: str, request: Request, registry: ServingRegistry, metrics: ServiceMetrics) -> Prediction:
    served = registry.get(variant)  # 404 / 503 before reading the body
    assert served.predictor is not None
    settings = request.app.state.settings
    batcher = request.app.state.batchers[variant]
    data = await read_within(_image_bytes(request), settings.body_timeout_s)
    with batcher.reserve(1, len(data) + input_bytes(served.predictor)):  # 503 before decoding
        with metrics.stage(variant, "decode"):
            (model_input,) = await prepare_payloads(request, served.predictor, [data])
        del data
        logits, model_ms = await batcher.submit(model_input, settings.request_timeout_s, request.is_disconnected)
    row = softmax(logits[None])[0]
    names = registry.manifest.data.get("label_names") or [str(i) for i in range(len(row))]
    best = int(row.argmax())
    return Prediction(
        variant=variant, label=names[best], score=float(row[best]),
        probabilities={name: float(p) for name, p in zip(names, row, strict=True)}, model_time_ms=round(model_ms, 3),
    )
