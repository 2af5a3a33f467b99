"""Serving while the build runs: every variant the build has built and scored is loaded and served at once.

The build and the service share only the artifacts folder. The build writes a variant's manifest entry after its
files are complete (the manifest is replaced atomically), and the service loads an entry only then, checking its
files against their sha256; the variant the build is working on is never loaded.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from service.build_runner import BuildRunner
from service.serving_state import router_state, start_batcher
from service.settings import ServiceSettings
from vitcore.catalogue import list_variants, resolve_selection
from vitcore.errors import ManifestError
from vitcore.manifest import MANIFEST_FILE, Manifest

log = logging.getLogger(__name__)

POLL_S = 1.0
PENDING_STATES = {"queued": "queued", "running": "building", "done": "loading"}


def manifest_stamp(root: Path) -> tuple[int, int] | None:
    try:
        stat = (root / MANIFEST_FILE).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def pending_variants(status: dict[str, Any], served: set[str], selection: str) -> dict[str, str]:
    """The build's variants not served yet, each ``queued``, ``building`` or ``loading`` (built, being loaded)."""
    registered, wanted = set(list_variants()), set(resolve_selection(selection))
    return {step["name"]: PENDING_STATES[step["state"]] for step in status.get("steps", [])
            if step["name"] in registered and step["name"] in wanted and step["name"] not in served
            and step["state"] in PENDING_STATES}


def same_build(served_entry: dict[str, Any], entry: dict[str, Any]) -> bool:
    return served_entry.get("status") == entry.get("status") and served_entry.get("files") == entry.get("files")


async def take_new_variants(app: FastAPI, settings: ServiceSettings, building: str | None) -> None:
    """Load the manifest's variants that are new or rebuilt since the last look (not ``building``, the one the
    build is writing); while the build runs, one that fails to load is retried at the next manifest change."""
    registry = app.state.registry
    try:
        registry.manifest = Manifest.load(settings.artifacts_dir)
    except ManifestError:
        return
    changed = []
    for name in registry.loadable(settings.variants):
        entry = registry.manifest.variants[name]
        served = registry.variants.get(name)
        if served is not None and same_build(served.entry, entry):
            served.entry = entry
            continue
        if name == building:
            continue
        loaded = await asyncio.to_thread(registry.load_one, name, entry, settings.verify_sha256)
        if not loaded.available and entry.get("status") == "ok" and building is not None and \
                not loaded.runtime_missing:
            continue
        registry.variants[name] = loaded
        changed.append(name)
        if loaded.available and name not in app.state.batchers:
            app.state.batchers[name] = start_batcher(registry, name, settings, app.state.metrics,
                                                     app.state.byte_budget)
    if changed:
        log.info("now serving %s", ", ".join(n for n in changed if registry.variants[n].available) or "nothing new")
        app.state.metrics.record_variants({name: v.available for name, v in registry.variants.items()})
        app.state.router = router_state(registry, settings, app.state.batchers, timing_s=0)
        app.state.router.note = "the build's figures, while it builds"
        gc.collect()
        gc.freeze()


async def follow_build(app: FastAPI, runner: BuildRunner, settings: ServiceSettings) -> None:
    """Until the build process ends: serve what it has built; then the final manifest, routed on as at start-up."""
    registry, seen = app.state.registry, None
    while True:
        running = runner.running
        status = runner.status()
        registry.pending = pending_variants(status, set(registry.variants), settings.variants) if running else {}
        stamp = manifest_stamp(settings.artifacts_dir)
        if stamp != seen or not running:  # once more after the end: a load skipped mid-build is retried
            seen = stamp
            await take_new_variants(app, settings, status.get("phase") if running else None)
        registry.pending = pending_variants(status, set(registry.variants), settings.variants) if running else {}
        if not running:
            break
        await asyncio.sleep(POLL_S)
    log.info("the build ended (%s): serving %d variants", status["state"],
             sum(v.available for v in registry.variants.values()))
    app.state.router = await asyncio.to_thread(router_state, registry, settings, app.state.batchers)
