"""OpenAPI declarations of the error answers, so that every route lists each status code it can give."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


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
