"""POST /predict/{variant}: one image as multipart (field `file`) or as a raw image/* body."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from build_models.errors import VitserveError
from build_models.preprocessing import softmax
from service.batching import QueueFullError
from service.dependencies import get_registry
from service.errors import UnsupportedMediaTypeError, status_of
from service.inputs import input_bytes, prepare_payloads, read_within
from service.metrics import ServiceMetrics
from service.registry import ServingRegistry
from service.responses import error_responses
from service.routing import Constraints, RouteChoice, choose_variant, degradation_order

router = APIRouter(tags=["predict"])

RAW_TYPES = ("image/", "application/octet-stream")


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


ERRORS = error_responses({
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


BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
    "image/*": {"schema": {"type": "string", "format": "binary"}},
}}}


async def _counted(variant: str, request: Request, registry: ServingRegistry,
                   answer: Callable[[], Awaitable[Prediction]]) -> Prediction:
    """Run ``answer`` and count the request under ``variant`` with its final status."""
    metrics: ServiceMetrics = request.app.state.metrics
    status, started = 500, time.perf_counter()
    try:
        prediction = await answer()
        status = 200
        return prediction
    except VitserveError as exc:
        status = status_of(exc)
        raise
    except StarletteHTTPException as exc:
        status = exc.status_code
        raise
    finally:
        metrics.record_request(variant, variant in registry.variants or variant in ("auto", "cascade"), status,
                               started)


@router.post("/predict/auto", response_model=Prediction, responses=ERRORS, openapi_extra=BODY)
async def predict_auto(
    request: Request, registry: ServingRegistry = Depends(get_registry),
    max_latency_ms: float | None = Query(None, gt=0, le=600_000, description="end-to-end budget in ms"),
    min_f1: float | None = Query(None, ge=0, le=1, description="lowest measured test F1 acceptable"),
    prefer: Literal["accuracy", "speed"] = Query("accuracy", description="most accurate within the budget, "
                                                 "or fastest meeting min_f1"),
) -> Prediction:
    """The variant chosen per request from each one's measured F1 and latency on this host and its queue now."""
    router_state = request.app.state.router
    constraints = Constraints(max_latency_ms if max_latency_ms is not None else router_state.default_max_latency_ms,
                              min_f1, prefer)

    async def answer() -> Prediction:
        metrics: ServiceMetrics = request.app.state.metrics
        try:
            choice = choose_variant(router_state.figures, router_state.queue_states(), constraints)
        except QueueFullError:
            metrics.route_choices.labels("auto", "none", "none_within_budget").inc()
            raise
        metrics.route_choices.labels("auto", choice.variant, choice.reason).inc()
        return await _predict(choice.variant, request, registry, routing=choice)

    return await _counted("auto", request, registry, answer)


@router.post("/predict/{variant}", response_model=Prediction, responses=ERRORS, openapi_extra=BODY)
async def predict(
    variant: str, request: Request, registry: ServingRegistry = Depends(get_registry),
    allow_degrade: bool = Query(False, description="with VITSERVE_DEGRADE=1: when this variant is saturated, a "
                                "cheaper one whose measured F1 is within the configured margin may answer"),
) -> Prediction:
    return await _counted(variant, request, registry,
                          lambda: _predict(variant, request, registry, allow_degrade=allow_degrade))


def _admit(request: Request, registry: ServingRegistry, variant: str, nbytes: int, allow_degrade: bool,
           stack: ExitStack) -> str:
    """Reserve room for the request on ``variant``, or, when it is saturated and degradation is allowed, on the
    first fallback with room; the name of the variant that admitted it. Raises QueueFullError (503)."""
    app = request.app
    served = registry.get(variant)
    assert served.predictor is not None
    try:
        stack.enter_context(app.state.batchers[variant].reserve(1, nbytes + input_bytes(served.predictor)))
        return variant
    except QueueFullError:
        if not (allow_degrade and app.state.settings.degrade):
            raise
    for fallback in degradation_order(variant, app.state.router.figures, app.state.settings.degrade_f1_margin):
        predictor = registry.get(fallback.name).predictor
        assert predictor is not None
        try:
            stack.enter_context(app.state.batchers[fallback.name].reserve(1, nbytes + input_bytes(predictor)))
        except QueueFullError:
            continue
        app.state.metrics.route_choices.labels("degrade", fallback.name, "degraded_saturated").inc()
        return fallback.name
    raise QueueFullError(f"variant {variant!r} and every variant it may degrade to are saturated; retry in 1 s")


async def _predict(variant: str, request: Request, registry: ServingRegistry, routing: RouteChoice | None = None,
                   allow_degrade: bool = False) -> Prediction:
    registry.get(variant)  # 404 / 503 before reading the body
    metrics: ServiceMetrics = request.app.state.metrics
    settings = request.app.state.settings
    data = await read_within(_image_bytes(request), settings.body_timeout_s)
    with ExitStack() as stack:
        name = _admit(request, registry, variant, len(data), allow_degrade, stack)  # 503 before decoding
        served = registry.get(name)
        assert served.predictor is not None
        with metrics.stage(name, "decode"):
            (model_input,) = await prepare_payloads(request, served.predictor, [data])
        del data
        logits, model_ms = await request.app.state.batchers[name].submit(
            model_input, settings.request_timeout_s, request.is_disconnected)
    row = softmax(logits[None])[0]
    names = registry.manifest.data.get("label_names") or [str(i) for i in range(len(row))]
    best = int(row.argmax())
    return Prediction(
        variant=name, label=names[best], score=float(row[best]),
        probabilities={label: float(p) for label, p in zip(names, row, strict=True)}, model_time_ms=round(model_ms, 3),
        routing=routing.as_dict() if routing else None, degraded_from=variant if name != variant else None,
    )
