"""Running the build's confidence cascade for one image: the first variant's calibrated answer, or the
second's below the threshold (the rule in ``vitcore.cascade``), each admitted and batched like any request.

The pair, the threshold and each one's temperature were chosen by the build on the validation split
(``manifest.json`` -> ``cascade``).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import Request

from service.admission import admit
from service.inputs import prepare_payloads
from service.registry import ServingRegistry
from service.routing import NoCascadeError
from vitcore.cascade import escalates, temperature_scaled
from vitcore.preprocessing import softmax


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
        _, hold = admit(request, registry, name, False, stack)
        served = registry.get(name)
        assert served.predictor is not None
        (model_input,) = await prepare_payloads(request, served.predictor, [data])
        logits, model_ms = await request.app.state.batchers[name].submit(
            model_input, settings.request_timeout_s, request.is_disconnected, hold)
    return temperature_scaled(softmax(logits[None]), temperature)[0], model_ms


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
    escalated = bool(escalates(row, threshold))
    if escalated:
        row, more_ms = await _calibrated(request, registry, then, data, float(temperatures.get(then, 1.0)))
        model_ms += more_ms
    answered = then if escalated else first
    request.app.state.metrics.route_choices.labels("cascade", answered, "escalated" if escalated else "confident").inc()
    return CascadeAnswer(answered, row, model_ms, first_score, escalated)
