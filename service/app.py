"""The FastAPI application: routers per concern, predictors loaded in the lifespan."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.batching import BatcherLimits, ByteBudget, MicroBatcher
from service.host_timing import routing_figures, time_served_variants
from service.http_errors import install_error_handlers
from service.middleware.body_admission import BodyAdmissionMiddleware
from service.middleware.body_limit import BodySizeLimitMiddleware
from service.middleware.drain import DrainMiddleware, DrainState
from service.middleware.request_id import request_id_and_access_log
from service.prometheus import ServiceMetrics
from service.registry import ServingRegistry
from service.routers import benchmark, cascade, health, metrics, page, predict, v2, variants
from service.routing import RouterState, host_summary
from service.settings import ServiceSettings
from vitcore.errors import ManifestError
from vitcore.manifest import Manifest

log = logging.getLogger(__name__)


def start_batchers(registry: ServingRegistry, settings: ServiceSettings, metrics: ServiceMetrics,
                   budget: ByteBudget) -> dict[str, MicroBatcher]:
    """One batcher per available variant; ``budget`` (the process-wide byte budget) is shared by all."""
    batchers = {}
    for name, served in registry.variants.items():
        if served.available:
            limits = BatcherLimits(settings.batch_size_for(name), settings.max_wait_ms, settings.queue_size)
            batcher = MicroBatcher(name, functools.partial(registry.logits, name), metrics, limits, budget)
            batcher.start()
            batchers[name] = batcher
    return batchers


def router_state(registry: ServingRegistry, settings: ServiceSettings,
                 batchers: dict[str, MicroBatcher]) -> RouterState:
    """The figures /predict/auto and degradation route on: the available variants among ``auto_variants``, timed
    on this host within ``startup_timing_s`` (0: the build's figures)."""
    chosen = [n.strip() for n in settings.auto_variants.split(",")] if settings.auto_variants != "all" else None
    routable = [name for name in batchers if chosen is None or name in chosen]
    if registry.startup_error is not None:
        return RouterState({}, batchers, settings.auto_max_latency_ms, "nothing to route on",
                           unavailable=registry.startup_error)
    timing = None
    note = "the build host's figures (VITSERVE_STARTUP_TIMING_S=0)"
    if settings.startup_timing_s > 0 and batchers:
        timing = time_served_variants(registry, list(batchers), settings.startup_timing_s, settings.max_image_pixels)
        note = (f"the serving host's figures, timed at start-up in {timing.seconds:g} s "
                f"(budget {settings.startup_timing_s:g} s)")
        if timing.out_of_time:
            note += f"; out of time, the build host's figures for {', '.join(timing.out_of_time)}"
    state = RouterState(routing_figures(registry.manifest.data, routable, timing), batchers,
                        settings.auto_max_latency_ms, note)
    if timing is not None:
        state.host = {name: host_summary(stats, "serving host: start-up") for name, stats in timing.measured.items()}
    return state


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    os.environ.setdefault("USE_TF", "0")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            manifest = Manifest.load(settings.artifacts_dir)
            registry = ServingRegistry(manifest, settings.thread_settings())
            registry.load(settings.variants, verify=settings.verify_sha256)
        except ManifestError as exc:
            log.error("NO ARTIFACTS: nothing to serve from %s (%s). Build them with `python -m build_models` and "
                      "mount them there, or bake them into the image (--build-arg PROFILE=...). /health/ready "
                      "answers 503 until then.", settings.artifacts_dir, exc)
            registry = ServingRegistry.empty(settings.artifacts_dir, "no usable manifest.json (see the service log)")
        app.state.registry = registry
        # The loaded runtimes leave many long-lived objects: left in the collector's generations, each full
        # collection scanned them all and stalled the event loop for up to 350 ms under load (health p99 147 ms).
        gc.collect()
        gc.freeze()
        app.state.metrics.record_variants({name: v.available for name, v in registry.variants.items()})
        app.state.batchers = start_batchers(registry, settings, app.state.metrics, app.state.byte_budget)
        app.state.router = router_state(registry, settings, app.state.batchers)
        app.state.decode_slots = asyncio.Semaphore(settings.decode_concurrency)
        yield
        for batcher in app.state.batchers.values():
            await batcher.stop()

    app = FastAPI(
        title="vitserve",
        summary="Cats-vs-dogs ViT and its compressed variants, each behind /predict/<variant>.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = ServiceMetrics()
    app.state.drain = DrainState()
    app.state.byte_budget = ByteBudget(settings.max_queued_bytes)
    app.add_middleware(BodyAdmissionMiddleware, budget=app.state.byte_budget)  # inside the drain and the body limit
    app.add_middleware(DrainMiddleware, state=app.state.drain)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.middleware("http")(request_id_and_access_log)
    install_error_handlers(app)
    # cascade and the auto route are declared before /predict/{variant}, which would otherwise match them.
    for router in (page.router, cascade.router, predict.router, variants.router, health.router, benchmark.router,
                   metrics.router, v2.router):
        app.include_router(router)
    return app
