"""OpenAPI declarations of the error answers, so that every route lists each status code it can give."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error but the V2 protocol's: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorDetail


class V2ErrorBody(BaseModel):
    """The Open Inference Protocol's error shape."""

    error: str


Responses = dict[int | str, dict[str, Any]]


def error_responses(descriptions: dict[int, str], model: type[BaseModel] = ErrorBody) -> Responses:
    return {status: {"model": model, "description": text} for status, text in descriptions.items()}


DRAINING = {503: "the service is draining before it stops; retry on another instance (see Retry-After)"}


class Prediction(BaseModel):
    variant: str
    label: str = Field(description="the most probable class")
    score: float = Field(description="probability of `label`")
    probabilities: dict[str, float] = Field(description="probability of every class")
    model_time_ms: float = Field(description="preprocessing + forward pass time of the batch this image ran in, "
                                             "excluding decode, queueing and HTTP")
    routing: dict[str, Any] | None = Field(None, description="/predict/auto: the variant chosen, why, its expected "
                                           "latency now and its measured F1")
    degraded_from: str | None = Field(None, description="set when the named variant was saturated and a cheaper "
                                      "one with a measured F1 within the configured margin answered instead "
                                      "(VITSERVE_DEGRADE=1 and allow_degrade=true)")


PREDICT_ERRORS = error_responses({
    400: "empty body or bytes that are not a decodable image",
    408: "the body did not arrive within the configured time",
    413: "body over the configured limit, or an image over the pixel limit",
    404: "unknown variant; the body lists the known ones",
    415: "neither multipart with `file` nor an image/* body, or an image format not accepted",
    422: "malformed parameters, or constraints no loaded variant could meet even on an idle service",
    499: "the client disconnected before the answer; its work was dropped",
    503: "the variant is built but could not be loaded, its queue (requests or bytes) is full, its worker "
         "restarted, or the service is draining; see Retry-After",
    504: "no answer within the configured request deadline",
})

# The request body of every route that takes one image: multipart `file` or the raw image bytes.
IMAGE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
    "image/*": {"schema": {"type": "string", "format": "binary"}},
}}}
