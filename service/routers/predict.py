"""POST /predict/{variant}: one image as multipart (field `file`) or as a raw image/* body."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request

from service.admission import admit, counted
from service.batching import QueueFullError
from service.dependencies import get_registry
from service.inputs import header_pixels, image_bytes, prepare_payloads, read_within
from service.prometheus import ServiceMetrics
from service.registry import ServingRegistry
from service.responses import IMAGE_BODY, PREDICT_ERRORS, Prediction
from service.routing import Constraints, RouteChoice, RouterState
from vitcore.preprocessing import softmax

router = APIRouter(tags=["predict"])


@router.post("/predict/auto", response_model=Prediction, responses=PREDICT_ERRORS, openapi_extra=IMAGE_BODY)
async def predict_auto(
    request: Request, registry: ServingRegistry = Depends(get_registry),
    max_latency_ms: float | None = Query(None, gt=0, le=600_000, description="end-to-end budget in ms"),
    min_f1: float | None = Query(None, ge=0, le=1, description="lowest measured test F1 acceptable"),
    prefer: Literal["accuracy", "speed"] = Query("accuracy", description="most accurate within the budget, "
                                                 "or fastest meeting min_f1"),
) -> Prediction:
    """The variant chosen per request from each one's measured F1, its latency timed on this host (for this
    image's size) and its queue now."""
    router_state: RouterState = request.app.state.router
    constraints = Constraints(max_latency_ms if max_latency_ms is not None else router_state.default_max_latency_ms,
                              min_f1, prefer)

    async def answer() -> Prediction:
        metrics: ServiceMetrics = request.app.state.metrics
        if router_state.unavailable is not None or not router_state.figures:
            router_state.choose(constraints)  # 503: nothing to route on, before the body is read
        data = await read_within(image_bytes(request), request.app.state.settings.body_timeout_s)
        try:
            choice = router_state.choose(constraints, [header_pixels(data)])
        except QueueFullError:
            metrics.route_choices.labels("auto", "none", "none_within_budget").inc()
            raise
        metrics.route_choices.labels("auto", choice.variant, choice.reason).inc()
        return await _predict(choice.variant, request, registry, routing=choice, data=data)

    return await counted("auto", request, registry, answer)


@router.post("/predict/{variant}", response_model=Prediction, responses=PREDICT_ERRORS, openapi_extra=IMAGE_BODY)
async def predict(
    variant: str, request: Request, registry: ServingRegistry = Depends(get_registry),
    allow_degrade: bool = Query(False, description="with VITSERVE_DEGRADE=1: when this variant is saturated, a "
                                "cheaper one whose measured F1 is within the configured margin may answer"),
) -> Prediction:
    return await counted(variant, request, registry,
                          lambda: _predict(variant, request, registry, allow_degrade=allow_degrade))



async def _predict(variant: str, request: Request, registry: ServingRegistry, routing: RouteChoice | None = None,
                   allow_degrade: bool = False, data: bytes | None = None) -> Prediction:
    registry.get(variant)  # 404 / 503 before reading the body
    metrics: ServiceMetrics = request.app.state.metrics
    settings = request.app.state.settings
    if data is None:
        data = await read_within(image_bytes(request), settings.body_timeout_s)
    with ExitStack() as stack:
        name, hold = admit(request, registry, variant, allow_degrade, stack)  # 503 before decoding
        served = registry.get(name)
        assert served.predictor is not None
        with metrics.stage(name, "decode"):
            (model_input,) = await prepare_payloads(request, served.predictor, [data])
        del data
        logits, model_ms = await request.app.state.batchers[name].submit(
            model_input, settings.request_timeout_s, request.is_disconnected, hold)
    row = softmax(logits[None])[0]
    names = registry.manifest.data.get("label_names") or [str(i) for i in range(len(row))]
    best = int(row.argmax())
    return Prediction(
        variant=name, label=names[best], score=float(row[best]),
        probabilities={label: float(p) for label, p in zip(names, row, strict=True)}, model_time_ms=round(model_ms, 3),
        routing=routing.as_dict() if routing else None, degraded_from=variant if name != variant else None,
    )
