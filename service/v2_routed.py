"""The V2 models ``auto`` and ``cascade``: the same routing as /predict/auto and /predict/cascade.

They take ``IMAGE`` only (the variants they choose between differ in input size, so preprocessed
``PIXELS`` would fit only some). ``auto`` reads its constraints from the request's ``parameters``
(``max_latency_ms``, ``min_f1``, ``prefer``) and chooses once per request; the response's
``parameters`` say which variant answered each image and why.
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from typing import Any

import numpy as np
from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool

from service.admission import admit
from service.cascade_runner import cascade_of, run_cascade
from service.inputs import header_pixels, prepare_payloads, read_within
from service.registry import ServingRegistry
from service.routing import PREFERENCES, Constraints, RouterState
from service.settings import ServiceSettings
from service.v2_codec import (
    HEADER_LENGTH,
    IMAGE_INPUT,
    InferenceRequestError,
    encode_infer_response,
    parse_infer_request,
)
from vitcore.errors import VariantUnavailableError
from vitcore.preprocessing import softmax

ROUTED_MODELS = ("auto", "cascade")


def routed_ready(request: Request, registry: ServingRegistry, model: str) -> None:
    """503 unless the routed model can answer: a variant to route to, or both variants of the cascade."""
    if model == "cascade":
        cascade_of(registry)
    elif request.app.state.router.unavailable is not None or not request.app.state.router.figures:
        raise VariantUnavailableError("auto", request.app.state.router.unavailable
                                      or "no serving variant has a measured F1 and latency")


def constraints_of(parameters: dict[str, Any], default_max_latency_ms: float | None) -> Constraints:
    """``auto``'s request parameters, checked: 400 for a wrong type or range."""
    def number(key: str, low: float, high: float) -> float | None:
        value = parameters.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not low < value <= high:
            raise InferenceRequestError(f"parameter {key!r} must be a number in ({low:g}, {high:g}], got {value!r}")
        return float(value)

    prefer = parameters.get("prefer", "accuracy")
    if prefer not in PREFERENCES:
        raise InferenceRequestError(f"parameter 'prefer' must be one of {', '.join(PREFERENCES)}, got {prefer!r}")
    max_latency_ms = number("max_latency_ms", 0.0, 600_000.0)
    return Constraints(default_max_latency_ms if max_latency_ms is None else max_latency_ms,
                       number("min_f1", -1e-12, 1.0), prefer)


async def _one(request: Request, registry: ServingRegistry, settings: ServiceSettings, name: str,
               data: bytes) -> np.ndarray:
    with ExitStack() as stack:
        _, hold = admit(request, registry, name, False, stack)
        served = registry.get(name)
        assert served.predictor is not None
        (model_input,) = await prepare_payloads(request, served.predictor, [data])
        logits, _ = await request.app.state.batchers[name].submit(model_input, settings.request_timeout_s,
                                                                  request.is_disconnected, hold)
    return np.asarray(logits, dtype=np.float32)


async def infer_routed(model: str, request: Request, registry: ServingRegistry, settings: ServiceSettings) -> Response:
    if model == "auto" and (request.app.state.router.unavailable is not None or not request.app.state.router.figures):
        request.app.state.router.choose(Constraints())  # 503: nothing to route on, before the body is read
    raw = await read_within(request.body(), settings.body_timeout_s)
    parsed = await run_in_threadpool(parse_infer_request, raw, request.headers.get(HEADER_LENGTH))
    if parsed.pixels is not None:
        raise InferenceRequestError(f"model {model!r} takes {IMAGE_INPUT!r} only: the variants it routes between "
                                    "take inputs of different sizes")
    if not 1 <= len(parsed.images) <= settings.queue_size:
        raise InferenceRequestError(f"send between 1 and {settings.queue_size} inputs, got {len(parsed.images)}")
    metrics = request.app.state.metrics
    if model == "auto":
        router_state: RouterState = request.app.state.router
        choice = router_state.choose(constraints_of(parsed.parameters, router_state.default_max_latency_ms),
                                     [header_pixels(data) for data in parsed.images])  # one expectation for all
        metrics.route_choices.labels("auto", choice.variant, choice.reason).inc()
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_one(request, registry, settings, choice.variant, data))
                     for data in parsed.images]
        logits = np.stack([task.result() for task in tasks])
        probabilities = softmax(logits)
        parameters = {"variants": ",".join([choice.variant] * len(tasks)), "reason": choice.reason,
                      "expected_ms": round(choice.expected_ms, 2)}
    else:
        cascade = cascade_of(registry)
        async with asyncio.TaskGroup() as group:
            outcomes = [group.create_task(run_cascade(request, registry, cascade, data)) for data in parsed.images]
        rows = [task.result() for task in outcomes]
        probabilities = np.stack([row.probabilities for row in rows]).astype(np.float32)
        logits = np.log(np.clip(probabilities, 1e-12, 1.0)).astype(np.float32)  # calibrated: log-probabilities
        parameters = {"variants": ",".join(row.variant for row in rows),
                      "escalated": ",".join("true" if row.escalated else "false" for row in rows)}
    labels = list(registry.manifest.data.get("label_names") or [str(i) for i in range(logits.shape[1])])
    body, headers = encode_infer_response(model, parsed, logits, probabilities, labels, parameters)
    return Response(content=body, headers=headers, media_type=headers["content-type"])
