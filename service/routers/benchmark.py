"""GET/POST /benchmark: on-host latency of the loaded variants, measured side by side. With a batch of 1, its
p50s replace the serving-host figures /predict/auto routes on (the answer's ``router`` says which)."""

from __future__ import annotations

import hmac
import threading
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from service.dependencies import get_registry, get_settings
from service.http_errors import (
    BenchmarkBusyError,
    BenchmarkForbiddenError,
    BenchmarkTooLargeError,
    BenchmarkUnauthorizedError,
)
from service.registry import ServingRegistry
from service.responses import error_responses
from service.routing import RouterState
from service.settings import ServiceSettings
from vitcore.hardware import machine_record
from vitcore.timing import BenchConfig, benchmark_many, reference_jpeg

router = APIRouter(tags=["benchmark"])

MAX_RUNS = 500
MAX_WARMUP = 100
MAX_BATCH = 64
_one_at_a_time = threading.Lock()


class BenchmarkRequest(BaseModel):
    variants: str = Field("all", description="'all' (every available variant) or a comma-separated list")
    runs: int = Field(30, ge=1, le=MAX_RUNS)
    warmup: int = Field(5, ge=0, le=MAX_WARMUP)
    batch_size: int = Field(1, ge=1, le=MAX_BATCH)
    mode: Literal["model", "end_to_end", "both"] = "both"


async def benchmark_access(request: Request, settings: ServiceSettings = Depends(get_settings)) -> None:
    """/benchmark is off unless VITSERVE_BENCHMARK_ENABLED; with a token set, it needs that bearer token."""
    if not settings.benchmark_enabled:
        raise BenchmarkForbiddenError("the benchmark endpoint is disabled; set VITSERVE_BENCHMARK_ENABLED=true")
    if settings.benchmark_token is not None:
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {settings.benchmark_token}".encode()):
            raise BenchmarkUnauthorizedError("the benchmark endpoint needs 'Authorization: Bearer <token>'")


def run_benchmark(registry: ServingRegistry, request: BenchmarkRequest, max_calls: int) -> dict[str, Any]:
    if not _one_at_a_time.acquire(blocking=False):
        raise BenchmarkBusyError("a benchmark is already running; try again when it has finished")
    try:
        names = registry.select_available(request.variants)
        if "plain" not in names and "plain" in registry.variants and registry.variants["plain"].available:
            names = ["plain", *names]  # speedups are relative to plain measured in the same call
        modes = 2 if request.mode == "both" else 1
        work = (request.runs + request.warmup) * request.batch_size * len(names) * modes
        if work > max_calls:
            raise BenchmarkTooLargeError(f"this benchmark would run {work} images (runs+warmup x batch x variants x "
                                         f"modes); the limit is {max_calls} (VITSERVE_BENCHMARK_MAX_CALLS)")
        predictors = {name: p for name in names if (p := registry.get(name).predictor) is not None}
        config = BenchConfig(runs=request.runs, warmup=request.warmup, batch_size=request.batch_size,
                             mode=request.mode)
        results = benchmark_many(predictors, config, reference_jpeg(), guard=lambda n: registry.variants[n].lock)
        return {"config": request.model_dump(), "machine": machine_record(registry.threads, predictors),
                "results": results}
    finally:
        _one_at_a_time.release()


ERRORS = {
    401: "a benchmark token is configured and the request does not carry it",
    403: "the benchmark endpoint is disabled (VITSERVE_BENCHMARK_ENABLED)",
    404: "an unknown variant in `variants`; the body lists the known ones",
    422: "a parameter is out of bounds, or the total work is over VITSERVE_BENCHMARK_MAX_CALLS",
    429: "another benchmark is running",
    503: "a variant in `variants` could not be loaded, or there is no manifest",
}
GET_RESPONSES = error_responses(ERRORS)
POST_RESPONSES = error_responses({**ERRORS, 400: "a body that cannot be parsed", 413: "body over the configured limit"})


@router.get("/benchmark", responses=GET_RESPONSES, dependencies=[Depends(benchmark_access)])
async def benchmark_get(
    request: Request,
    variants: str = Query("all"),
    runs: int = Query(30, ge=1, le=MAX_RUNS),
    warmup: int = Query(5, ge=0, le=MAX_WARMUP),
    batch_size: int = Query(1, ge=1, le=MAX_BATCH),
    mode: Literal["model", "end_to_end", "both"] = Query("both"),
    registry: ServingRegistry = Depends(get_registry),
    settings: ServiceSettings = Depends(get_settings),
) -> dict[str, Any]:
    body = BenchmarkRequest(variants=variants, runs=runs, warmup=warmup, batch_size=batch_size, mode=mode)
    result = await run_in_threadpool(run_benchmark, registry, body, settings.benchmark_max_calls)
    return retime_router(request.app.state.router, body, result)


@router.post("/benchmark", responses=POST_RESPONSES, dependencies=[Depends(benchmark_access)])
async def benchmark_post(
    body: BenchmarkRequest, request: Request, registry: ServingRegistry = Depends(get_registry),
    settings: ServiceSettings = Depends(get_settings),
) -> dict[str, Any]:
    result = await run_in_threadpool(run_benchmark, registry, body, settings.benchmark_max_calls)
    return retime_router(request.app.state.router, body, result)


def retime_router(router_state: RouterState, body: BenchmarkRequest, result: dict[str, Any]) -> dict[str, Any]:
    """A batch-of-1 benchmark's p50s become the serving-host figures the router uses; ``result["router"]`` says
    which variants were updated (a larger batch times something else: nothing is replaced)."""
    updated = router_state.retimed(result["results"], "serving host: /benchmark") if body.batch_size == 1 else []
    if updated:
        router_state.note = "the serving host's figures, re-timed by /benchmark for " + ", ".join(updated)
    result["router"] = {"updated": updated, "figures": router_state.note}
    return result
