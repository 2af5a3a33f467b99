"""The FastAPI application: routers per concern, predictors loaded in the lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.batching import ByteBudget
from service.build_follow import follow_build
from service.build_runner import BuildRunner, build_needed
from service.http_errors import install_error_handlers
from service.middleware.body_admission import BodyAdmissionMiddleware
from service.middleware.body_limit import BodySizeLimitMiddleware
from service.middleware.drain import DrainMiddleware, DrainState
from service.middleware.request_id import request_id_and_access_log
from service.prometheus import ServiceMetrics
from service.registry import ServingRegistry
from service.routers import benchmark, build, cascade, health, metrics, page, predict, v2, variants
from service.serving_state import router_state, start_batchers
from service.settings import ServiceSettings
from vitcore.errors import ManifestError
from vitcore.manifest import Manifest

log = logging.getLogger(__name__)


def load_registry(settings: ServiceSettings) -> ServingRegistry:
    """Every selected variant of the manifest, loaded before the first request."""
    try:
        manifest = Manifest.load(settings.artifacts_dir)
        registry = ServingRegistry(manifest, settings.thread_settings())
        registry.load(settings.variants, verify=settings.verify_sha256)
    except ManifestError as exc:
        log.error("NO ARTIFACTS: nothing to serve from %s (%s). Build them with `python -m build_models` and "
                  "mount them there, or bake them into the image (--build-arg PROFILE=...), or start with "
                  "--build-if-missing. /health/ready answers 503 until then.", settings.artifacts_dir, exc)
        registry = ServingRegistry.empty(settings.artifacts_dir, "no usable manifest.json (see the service log)")
    return registry


def start_build(settings: ServiceSettings) -> BuildRunner | None:
    """With ``build_if_missing`` and no finished build in the artifacts folder: the build, started beside the
    server, which serves each variant as it is built."""
    if not settings.build_if_missing or not build_needed(settings.artifacts_dir):
        return None
    runner = BuildRunner(settings.artifacts_dir, settings.build_profile, settings.build_args)
    runner.start()
    return runner


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    os.environ.setdefault("USE_TF", "0")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner = start_build(settings)
        app.state.build = runner
        registry = ServingRegistry(Manifest(root=settings.artifacts_dir, data={"variants": {}}),
                                   settings.thread_settings()) if runner else load_registry(settings)
        app.state.registry = registry
        # The loaded runtimes leave many long-lived objects: left in the collector's generations, each full
        # collection scanned them all and stalled the event loop for up to 350 ms under load (health p99 147 ms).
        gc.collect()
        gc.freeze()
        app.state.metrics.record_variants({name: v.available for name, v in registry.variants.items()})
        app.state.batchers = start_batchers(registry, settings, app.state.metrics, app.state.byte_budget)
        app.state.router = router_state(registry, settings, app.state.batchers, timing_s=0 if runner else None)
        app.state.decode_slots = asyncio.Semaphore(settings.decode_concurrency)
        follower = asyncio.create_task(follow_build(app, runner, settings)) if runner else None
        yield
        if follower is not None:
            follower.cancel()
            await asyncio.to_thread(runner.stop)  # type: ignore[union-attr]
        for batcher in app.state.batchers.values():
            await batcher.stop()

    app = FastAPI(
        title="vitserve",
        summary="Cats-vs-dogs ViT and its compressed variants, each behind /predict/<variant>.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.build = None
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
                   metrics.router, v2.router, build.router):
        app.include_router(router)
    return app
