"""The variants the service holds, with their manifest metadata."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from service.dependencies import get_registry
from service.readiness import build_status
from service.registry import ServingRegistry
from service.responses import DRAINING, error_responses
from service.routing import RouterState
from service.study_routes import route_rows
from vitcore.catalogue import get_variant
from vitcore.manifest import selection_basis

router = APIRouter(tags=["variants"])


@router.get("/variants", responses=error_responses(DRAINING))
async def variants(request: Request, registry: ServingRegistry = Depends(get_registry)) -> dict[str, Any]:
    """Each variant's metadata; ``latency`` is the build host's, ``serving_host_latency`` this host's (timed at
    start-up or by /benchmark), and ``routing`` says which figures /predict/auto routes on."""
    manifest = registry.manifest.data
    build = build_status(request)
    router_state: RouterState = request.app.state.router
    serving = {name for name, served in registry.variants.items() if served.available}
    described = registry.describe()
    held_out = not manifest.get("base_model", {}).get("evaluation_overlap")  # else base_model says on what
    for row in described:
        row["state"] = "served" if row["available"] else "unavailable"
        row["f1_held_out"] = held_out
        row["serving_host_latency"] = router_state.host.get(row["name"])
        figures = router_state.figures.get(row["name"])
        row["routed_on"] = None if figures is None else {
            "source": figures.source, "end_to_end_ms": round(figures.e2e_ms, 3), "model_ms": round(figures.model_ms, 3),
            "decode_ms_by_pixels": figures.decode.as_dict() if figures.decode is not None else None}
    return {
        "profile": manifest.get("profile"),
        "label_names": manifest.get("label_names"),
        "base_model": {k: v for k, v in manifest.get("base_model", {}).items() if k != "training"},
        "test_split": manifest.get("dataset", {}).get("split", {}).get("test"),
        # What every variant's F1 rests on: its metrics repeat this set's images, sample_seed and id
        "evaluation": manifest.get("evaluation"),
        # What /predict/auto chooses on: each variant's F1 on this validation sample (its ``validation``)
        "selection": manifest.get("selection"),
        "degraded": registry.degraded,
        "variants": described + pending_rows(registry, build),
        "build": build,
        "routing": {"figures": router_state.note, "build_machine": manifest.get("latency", {}).get("machine"),
                    "chooses_on": selection_basis(manifest)},
        "cascade": {k: v for k, v in (manifest.get("cascade") or {}).items() if k != "frontier"} or None,
        "routes": route_rows(manifest, router_state.figures, serving),
    }


def pending_rows(registry: ServingRegistry, build: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The variants a running build has not delivered yet: ``queued``, ``building`` or ``loading``, with their
    planned minutes."""
    planned = {step["name"]: step["planned_minutes"] for step in (build or {}).get("steps", [])}
    return [{"name": name, "state": state, "available": False, "degraded": False, "runtime": get_variant(name).runtime,
             "summary": get_variant(name).summary, "planned_minutes": planned.get(name), "metrics": None,
             "latency": None, "size_mb": None} for name, state in registry.pending.items()]
