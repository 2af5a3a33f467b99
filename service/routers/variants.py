"""The variants the service holds, with their manifest metadata."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from service.dependencies import get_registry
from service.registry import ServingRegistry
from service.responses import DRAINING, error_responses
from service.study_routes import route_rows

router = APIRouter(tags=["variants"])


@router.get("/variants", responses=error_responses(DRAINING))
async def variants(request: Request, registry: ServingRegistry = Depends(get_registry)) -> dict[str, Any]:
    manifest = registry.manifest.data
    router = getattr(request.app.state, "router", None)
    serving = {name for name, served in registry.variants.items() if served.available}
    return {
        "profile": manifest.get("profile"),
        "label_names": manifest.get("label_names"),
        "base_model": {k: v for k, v in manifest.get("base_model", {}).items() if k != "training"},
        "test_split": manifest.get("dataset", {}).get("split", {}).get("test"),
        "degraded": registry.degraded,
        "variants": registry.describe(),
        "cascade": {k: v for k, v in (manifest.get("cascade") or {}).items() if k != "frontier"} or None,
        "routes": route_rows(manifest, router.figures if router else {}, serving),
    }
