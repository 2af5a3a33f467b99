"""GET /build: the build running beside this server (``--build-if-missing``), its plan and where it is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.readiness import build_status
from service.responses import DRAINING, error_responses

router = APIRouter(tags=["build"])


@router.get("/build", responses=error_responses(DRAINING))
async def build(request: Request) -> dict[str, Any]:
    """``state`` running, done or failed (with ``error``); ``phase``, ``percent`` of the planned minutes, ``eta_s``
    and each step's state and planned minutes. ``state`` is ``none`` when this server started no build."""
    status = build_status(request)
    if status is None:
        return {"state": "none", "detail": "no build runs beside this server: `python -m service "
                "--build-if-missing` starts one when the artifacts folder holds no finished build"}
    return status
