"""POST /predict/cascade: the cheap variant answers when it is confident; otherwise the most accurate does.

The pair, the threshold and each one's temperature were chosen by the build on the validation split
(``manifest.json`` → ``cascade``); the threshold applies to the calibrated top probability.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from service.admission import counted
from service.cascade_runner import cascade_of, run_cascade
from service.dependencies import get_registry
from service.inputs import image_bytes, read_within
from service.registry import ServingRegistry
from service.responses import IMAGE_BODY, PREDICT_ERRORS, Prediction

router = APIRouter(tags=["predict"])



@router.post("/predict/cascade", response_model=Prediction, responses=PREDICT_ERRORS, openapi_extra=IMAGE_BODY)
async def predict_cascade(request: Request, registry: ServingRegistry = Depends(get_registry)) -> Prediction:
    """The build's confidence cascade; the response says which variant answered and whether it escalated."""

    async def answer() -> Prediction:
        cascade = cascade_of(registry)
        data = await read_within(image_bytes(request), request.app.state.settings.body_timeout_s)
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

    return await counted("cascade", request, registry, answer)
