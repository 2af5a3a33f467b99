"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from service.dependencies import get_registry, get_settings
from service.registry import ServingRegistry
from service.settings import ServiceSettings

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/ready", responses={503: {"description": "a required variant is not serving, or there is no manifest"}})
async def ready(registry: ServingRegistry = Depends(get_registry),
                settings: ServiceSettings = Depends(get_settings)) -> JSONResponse:
    """Ready when every variant in VITSERVE_REQUIRED_VARIANTS serves; failed ones are listed as degraded.

    Async and lock-free, so it answers while every worker thread is busy predicting.
    """
    required = settings.required_variants
    body: dict[str, Any] = {
        "ready": registry.is_ready(required),
        "required": required,
        "missing_required": registry.missing_required(required),
        "degraded": registry.degraded,
        "variants": {name: ("loaded" if v.available else f"unavailable: {v.error}")
                     for name, v in registry.variants.items()},
    }
    if registry.startup_error:
        body["error"] = registry.startup_error
    return JSONResponse(body, status_code=200 if body["ready"] else 503)
