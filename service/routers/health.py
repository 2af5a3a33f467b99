"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from service.dependencies import get_registry
from service.registry import ServingRegistry

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/ready", responses={503: {"description": "some variant in the manifest did not load"}})
def ready(registry: ServingRegistry = Depends(get_registry)) -> JSONResponse:
    body: dict[str, Any] = {
        "ready": registry.ready,
        "variants": {name: ("loaded" if v.available else f"unavailable: {v.error}")
                     for name, v in registry.variants.items()},
    }
    if registry.startup_error:
        body["error"] = registry.startup_error
    return JSONResponse(body, status_code=200 if registry.ready else 503)
