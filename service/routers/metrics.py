"""GET /metrics in the Prometheus text format, and GET /metrics/summary as JSON (both async: they answer while
every worker is busy)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.responses import DRAINING, error_responses

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/metrics/summary", responses=error_responses(DRAINING))
async def metrics_summary(request: Request) -> dict[str, Any]:
    """Per variant: requests by HTTP status, p50 and p99 of the total request time in ms, queue depth."""
    return {"variants": request.app.state.metrics.summary()}
