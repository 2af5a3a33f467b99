"""The variants the service holds, with their manifest metadata."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from service.dependencies import get_registry
from service.registry import ServingRegistry
from service.responses import DRAINING, error_responses

router = APIRouter(tags=["variants"])


@router.get("/variants", responses=error_responses(DRAINING))
async def variants(registry: ServingRegistry = Depends(get_registry)) -> dict[str, Any]:
    manifest = registry.manifest.data
    return {
        "profile": manifest.get("profile"),
        "label_names": manifest.get("label_names"),
        "base_model": {k: v for k, v in manifest.get("base_model", {}).items() if k != "training"},
        "test_split": manifest.get("dataset", {}).get("split", {}).get("test"),
        # What every variant's F1 rests on: its metrics repeat this set's images, sample_seed and id
        "evaluation": manifest.get("evaluation"),
        "degraded": registry.degraded,
        "variants": registry.describe(),
        "cascade": {k: v for k, v in (manifest.get("cascade") or {}).items() if k != "frontier"} or None,
    }
