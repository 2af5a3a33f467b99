"""The one place where typed errors become HTTP status codes and JSON bodies."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.batching import (
    ClientGoneError,
    DeadlineExceededError,
    QueueFullError,
    ServiceStoppingError,
    WorkerRestartedError,
)
from service.inputs import BodyTimeoutError, UnsupportedMediaTypeError
from service.routing import (
    ImpossibleConstraintError,
    NoCascadeError,
    NoVariantWithinBudgetError,
    RoutingUnavailableError,
)
from service.v2_codec import InferenceRequestError
from vitcore.errors import (
    ArtifactIntegrityError,
    ImageTooLargeError,
    InvalidImageError,
    ManifestError,
    UnknownVariantError,
    UnsupportedImageFormatError,
    VariantUnavailableError,
    VitserveError,
)

log = logging.getLogger(__name__)


class BodyTooLargeError(HTTPException):
    """Raised while reading a body past the limit (an HTTPException so form parsing lets it through)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body exceeds the limit of {limit} bytes")


class BodyOverBudgetError(HTTPException):
    """Raised while reading a body without a declared length once the process-wide byte budget is spent (503)."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=503, detail=message, headers={"Retry-After": "1"})


class BenchmarkBusyError(VitserveError):
    pass


class BenchmarkForbiddenError(VitserveError):
    pass


class BenchmarkUnauthorizedError(VitserveError):
    pass


class BenchmarkTooLargeError(VitserveError):
    pass


STATUS_BY_ERROR: list[tuple[type[Exception], int, str]] = [
    (UnsupportedImageFormatError, 415, "unsupported_image_format"),
    (ImageTooLargeError, 413, "image_too_large"),
    (InvalidImageError, 400, "invalid_image"),
    (UnsupportedMediaTypeError, 415, "unsupported_media_type"),
    (BodyTimeoutError, 408, "body_timeout"),
    (InferenceRequestError, 400, "invalid_inference_request"),
    (UnknownVariantError, 404, "unknown_variant"),
    (VariantUnavailableError, 503, "variant_unavailable"),
    (ArtifactIntegrityError, 503, "artifact_integrity"),
    (ManifestError, 503, "manifest_unavailable"),
    (RoutingUnavailableError, 503, "routing_unavailable"),
    (ImpossibleConstraintError, 422, "impossible_constraints"),
    (NoCascadeError, 404, "no_cascade"),
    (NoVariantWithinBudgetError, 503, "no_variant_within_budget"),
    (WorkerRestartedError, 503, "worker_restarted"),
    (ServiceStoppingError, 503, "service_stopping"),
    (QueueFullError, 503, "queue_full"),
    (DeadlineExceededError, 504, "deadline_exceeded"),
    (ClientGoneError, 499, "client_closed_request"),
    (BenchmarkBusyError, 429, "benchmark_busy"),
    (BenchmarkForbiddenError, 403, "benchmark_disabled"),
    (BenchmarkUnauthorizedError, 401, "benchmark_unauthorized"),
    (BenchmarkTooLargeError, 422, "benchmark_too_large"),
    (VitserveError, 500, "internal_error"),
]


def status_of(exc: Exception) -> int:
    return next((status for error_type, status, _ in STATUS_BY_ERROR if isinstance(exc, error_type)), 500)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def _vitserve_handler(request: Request, exc: Exception) -> JSONResponse:
    for error_type, status, code in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            extra = {"known_variants": exc.known} if isinstance(exc, UnknownVariantError) else {}
            if status >= 500 and error_type is VitserveError:
                break
            headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, QueueFullError) else None
            return JSONResponse(error_body(code, str(exc), **extra), status_code=status, headers=headers)
    return _unexpected_handler(request, exc)


def v2_error_response(exc: Exception) -> JSONResponse:
    """The Open Inference Protocol's error shape, ``{"error": "<message>"}``, with the same status codes."""
    if isinstance(exc, StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)
    status = status_of(exc)
    if not isinstance(exc, VitserveError) or (status >= 500 and type(exc) is VitserveError):
        log.error("unexpected error in a V2 request", exc_info=exc)
        return JSONResponse({"error": "internal server error"}, status_code=500)
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, QueueFullError) else None
    return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)


def _http_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {400: "bad_request", 413: "body_too_large", 404: "not_found", 405: "method_not_allowed",
            503: "queue_full"}.get(
        exc.status_code, "http_error")
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


def _validation_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
    return JSONResponse(error_body("validation_error", "invalid request parameters", details=details),
                        status_code=422)


def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    """Anything unplanned: logged with its traceback, answered without internals."""
    request_id = getattr(request.state, "request_id", None)
    log.error("unexpected error (request %s)", request_id, exc_info=exc)
    return JSONResponse(error_body("internal_error", "internal server error", request_id=request_id),
                        status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unexpected_handler)
    app.add_exception_handler(VitserveError, _vitserve_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)  # FastAPI's HTTPException included
    app.add_exception_handler(RequestValidationError, _validation_handler)
