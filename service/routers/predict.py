"""POST /predict/{variant}: one image as multipart (field `file`) or as a raw image/* body."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from build_models.preprocessing import decode_image
from service.dependencies import get_registry
from service.errors import UnsupportedMediaTypeError
from service.registry import ServingRegistry

router = APIRouter(tags=["predict"])

RAW_TYPES = ("image/", "application/octet-stream")


class Prediction(BaseModel):
    variant: str
    label: str = Field(description="the most probable class")
    score: float = Field(description="probability of `label`")
    probabilities: dict[str, float] = Field(description="probability of every class")
    model_time_ms: float = Field(description="preprocessing + forward pass time, excluding decode and HTTP")


ERRORS = {
    400: {"description": "empty body or bytes that are not a decodable image"},
    404: {"description": "unknown variant; the body lists the known ones"},
    413: {"description": "body over the configured limit"},
    415: {"description": "neither multipart with `file` nor an image/* body"},
    503: {"description": "the variant is built but could not be loaded"},
}


async def _image_bytes(request: Request, file: UploadFile | None) -> bytes:
    if file is not None:
        return await file.read()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith("multipart/form-data"):
        raise UnsupportedMediaTypeError("multipart body without a `file` field")
    if not content_type.startswith(RAW_TYPES):
        raise UnsupportedMediaTypeError(
            f"unsupported content type {content_type or '(none)'!r}: send multipart/form-data with a "
            "`file` field, or the image bytes with an image/* content type")
    return await request.body()


@router.post(
    "/predict/{variant}", response_model=Prediction, responses=ERRORS,  # type: ignore[arg-type]
    openapi_extra={"requestBody": {"content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
    }}},
)
async def predict(
    variant: str,
    request: Request,
    file: UploadFile | None = File(None, description="the image (multipart form field)"),
    registry: ServingRegistry = Depends(get_registry),
) -> Prediction:
    registry.get(variant)  # 404 / 503 before reading the body
    image = decode_image(await _image_bytes(request, file))
    probabilities, model_ms = await run_in_threadpool(registry.predict, variant, [image])
    names = registry.manifest.data.get("label_names") or [str(i) for i in range(probabilities.shape[1])]
    row = probabilities[0]
    best = int(row.argmax())
    return Prediction(
        variant=variant, label=names[best], score=float(row[best]),
        probabilities={name: float(p) for name, p in zip(names, row, strict=True)}, model_time_ms=round(model_ms, 3),
    )
