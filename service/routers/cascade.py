"""POST /predict/cascade: the cheap variant answers when it is confident; otherwise the most accurate does.

The pair, the threshold and each one's temperature were chosen by the build on the validation split
(``manifest.json`` → ``cascade``); the threshold applies to the calibrated top probability.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request

from build_models.preprocessing import softmax
from service.dependencies import get_registry
from service.inputs import prepare_payloads, read_within
from service.registry import ServingRegistry
from service.routers.predict import BODY, ERRORS, Prediction, _admit, _counted, _image_bytes
from service.routing import NoCascadeError

router = APIRouter(tags=["predict"])


def cascade_of(registry: ServingRegistry) -> dict[str, Any]:
    """The build's cascade, when both of its variants serve; 404 when it chose none, 503 when one is down."""
    cascade = registry.manifest.data.get("cascade") or {}
    if "first" not in cascade:
        raise NoCascadeError("this build chose no cascade (it needs two variants with a measured F1 and latency)")
    for name in (cascade["first"], cascade["then"]):
        registry.get(name)  # 503 when one of the pair does not serve
    return cascade


async def _calibrated(request: Request, registry: ServingRegistry, name: str, data: bytes,
                      temperature: float) -> tuple[np.ndarray, float]:
    """Calibrated probabilities of one variant for the image, admitted and batched like any request."""
    settings = request.app.state.settings
    with ExitStack() as stack:
        _admit(request, registry, name, len(data), False, stack)
        served = registry.get(name)
        assert served.predictor is not None
        (model_input,) = await prepare_payloads(request, served.predictor, [data])
        logits, model_ms = await request.app.state.batchers[name].submit(
            model_input, settings.request_timeout_s, request.is_disconnected)
    return softmax((logits / temperature)[None])[0], model_ms


@dataclass(frozen=True)
class CascadeAnswer:
    variant: str
    probabilities: np.ndarray  # calibrated
    model_ms: float
    first_score: float
    escalated: bool


async def run_cascade(request: Request, registry: ServingRegistry, cascade: dict[str, Any],
                      data: bytes) -> CascadeAnswer:
    """The first variant's calibrated answer, or the second's when the first's top probability is below the
    threshold; counted in vitserve_route_choices_total{route="cascade"}."""
    first, then, threshold = cascade["first"], cascade["then"], float(cascade["threshold"])
    temperatures = cascade.get("temperatures", {})
    row, model_ms = await _calibrated(request, registry, first, data, float(temperatures.get(first, 1.0)))
    first_score = float(row.max())
    escalated = first_score < threshold
    if escalated:
        row, more_ms = await _calibrated(request, registry, then, data, float(temperatures.get(then, 1.0)))
        model_ms += more_ms
    answered = then if escalated else first
    request.app.state.metrics.route_choices.labels("cascade", answered, "escalated" if escalated else "confident").inc()
    return CascadeAnswer(answered, row, model_ms, first_score, escalated)


@router.post("/predict/cascade", response_model=Prediction, responses=ERRORS, openapi_extra=BODY)
async def predict_cascade(request: Request, registry: ServingRegistry = Depends(get_registry)) -> Prediction:
    """The build's confidence cascade; the response says which variant answered and whether it escalated."""

    async def answer() -> Prediction:
        cascade = cascade_of(registry)
        data = await read_within(_image_bytes(request), request.app.state.settings.body_timeout_s)
        outcome = await run_cascade(request, registry, cascade, data)
        row = outcome.probabilities
        names = registry.manifest.data.get("label_names") or [str(i) for i in range(len(row))]
        best = int(row.argmax())
        return Prediction(variant=outcome.variant, label=names[best], score=float(row[best]),
                          probabilities={label: float(p) for label, p in zip(names, row, strict=True)},
                          model_time_ms=round(outcome.model_ms, 3),
                          routing={"route": "cascade", "first": cascade["first"], "then": cascade["then"],
                                   "threshold": float(cascade["threshold"]),
                                   "first_calibrated_score": round(outcome.first_score, 4),
                                   "escalated": outcome.escalated})

    return await _counted("cascade", request, registry, answer)
