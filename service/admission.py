"""Admission and accounting shared by every prediction route: room reserved on a variant's queue before a
body is decoded (or on a cheaper variant when degradation is allowed), and each request counted with its
final status."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import TypeVar

from fastapi import Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.batching import Hold, QueueFullError
from service.http_errors import status_of
from service.inputs import input_bytes
from service.prometheus import ServiceMetrics
from service.registry import ServingRegistry
from service.routing import degradation_order
from vitcore.errors import VitserveError

T = TypeVar("T")


async def counted(variant: str, request: Request, registry: ServingRegistry,
                   answer: Callable[[], Awaitable[T]]) -> T:
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


def admit(request: Request, registry: ServingRegistry, variant: str, allow_degrade: bool,
          stack: ExitStack) -> tuple[str, Hold]:
    """Reserve a slot on ``variant`` (and its preprocessed input's bytes on the process-wide budget; the body's
    were admitted before it was read), or, when it is saturated and degradation is allowed, on the first
    fallback with room; the variant that admitted it and the hold to submit with. Raises QueueFullError (503)."""
    app = request.app
    served = registry.get(variant)
    assert served.predictor is not None
    try:
        return variant, stack.enter_context(app.state.batchers[variant].reserve(1, input_bytes(served.predictor)))
    except QueueFullError:
        if not (allow_degrade and app.state.settings.degrade):
            raise
    for fallback in degradation_order(variant, app.state.router.figures, app.state.settings.degrade_f1_margin):
        predictor = registry.get(fallback.name).predictor
        assert predictor is not None
        try:
            hold = stack.enter_context(app.state.batchers[fallback.name].reserve(1, input_bytes(predictor)))
        except QueueFullError:
            continue
        app.state.metrics.route_choices.labels("degrade", fallback.name, "degraded_saturated").inc()
        return fallback.name, hold
    raise QueueFullError(f"variant {variant!r} and every variant it may degrade to are saturated; retry in 1 s")
