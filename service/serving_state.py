"""What the service serves from: a batcher per available variant and the figures /predict/auto routes on."""

from __future__ import annotations

import functools

from service.batching import BatcherLimits, ByteBudget, MicroBatcher
from service.host_timing import routing_figures, time_served_variants
from service.prometheus import ServiceMetrics
from service.registry import ServingRegistry
from service.routing import RouterState, host_summary
from service.settings import ServiceSettings


def start_batchers(registry: ServingRegistry, settings: ServiceSettings, metrics: ServiceMetrics,
                   budget: ByteBudget) -> dict[str, MicroBatcher]:
    """One batcher per available variant; ``budget`` (the process-wide byte budget) is shared by all."""
    batchers: dict[str, MicroBatcher] = {}
    for name, served in registry.variants.items():
        if served.available:
            batchers[name] = start_batcher(registry, name, settings, metrics, budget)
    return batchers


def start_batcher(registry: ServingRegistry, name: str, settings: ServiceSettings, metrics: ServiceMetrics,
                  budget: ByteBudget) -> MicroBatcher:
    limits = BatcherLimits(settings.batch_size_for(name), settings.max_wait_ms, settings.queue_size)
    batcher = MicroBatcher(name, functools.partial(registry.logits, name), metrics, limits, budget)
    batcher.start()
    return batcher


def router_state(registry: ServingRegistry, settings: ServiceSettings, batchers: dict[str, MicroBatcher],
                 timing_s: float | None = None) -> RouterState:
    """The figures /predict/auto and degradation route on: the available variants among ``auto_variants``, timed
    on this host within ``timing_s`` (default ``startup_timing_s``; 0: the build's figures)."""
    timing_s = settings.startup_timing_s if timing_s is None else timing_s
    chosen = [n.strip() for n in settings.auto_variants.split(",")] if settings.auto_variants != "all" else None
    routable = [name for name in batchers if chosen is None or name in chosen]
    if registry.startup_error is not None:
        return RouterState({}, batchers, settings.auto_max_latency_ms, "nothing to route on",
                           unavailable=registry.startup_error)
    timing = None
    note = "the build host's figures (VITSERVE_STARTUP_TIMING_S=0)"
    if timing_s > 0 and batchers:
        timing = time_served_variants(registry, list(batchers), timing_s, settings.max_image_pixels)
        note = (f"the serving host's figures, timed at start-up in {timing.seconds:g} s "
                f"(budget {timing_s:g} s)")
        if timing.out_of_time:
            note += f"; out of time, the build host's figures for {', '.join(timing.out_of_time)}"
    state = RouterState(routing_figures(registry.manifest.data, routable, timing), batchers,
                        settings.auto_max_latency_ms, note)
    if timing is not None:
        state.host = {name: host_summary(stats, "serving host: start-up") for name, stats in timing.measured.items()}
    return state
