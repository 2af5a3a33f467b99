"""The serving host's own latency figures, for /predict/auto: every served variant timed after loading, with
the service's thread settings, within ``VITSERVE_STARTUP_TIMING_S``; and the decode + preprocess cost by image
size, so a request's expectation follows its own image.

The build's figures were measured with all of the build machine's cores, possibly on another machine; these
are what this process can do. 0 seconds keeps the build's figures (and /variants says so).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from service.registry import ServingRegistry
from service.routing import VariantFigures, f1_scores, figures_from_manifest, with_host_timing
from vitcore.backends.base import Predictor
from vitcore.preprocessing import decode_image
from vitcore.timing import COST_SIZES, CostCurve, decode_cost, host_latency, reference_jpeg

log = logging.getLogger(__name__)

DECODE_SHARE = 0.2  # of the start-up budget kept for the decode + preprocess curve(s), timed after the variants


@dataclass
class HostTiming:
    """What start-up measured: {variant: {mode: stats}}, decode curves per variant, and what was left out."""

    measured: dict[str, dict[str, Any]] = field(default_factory=dict)
    decode: dict[str, CostCurve] = field(default_factory=dict)
    out_of_time: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _prepare(predictor: Predictor, max_pixels: int, data: bytes) -> object:
    return predictor.prepare(decode_image(data, max_pixels))


def time_served_variants(registry: ServingRegistry, names: list[str], budget_s: float,
                         max_pixels: int) -> HostTiming:
    """Time ``names`` (served variants) on this host within about ``budget_s``: each variant's model and
    end-to-end latency, then a decode + preprocess curve per input size the variants use. A variant the budget
    does not reach keeps the build's figures (listed in ``out_of_time``); without time left for the curves,
    expectations do not follow the image size."""
    started = time.perf_counter()
    timing = HostTiming()
    predictors = {name: p for name in names if (p := registry.variants[name].predictor) is not None}
    deadline = started + budget_s * (1 - DECODE_SHARE)
    jpeg = reference_jpeg()
    for index, (name, predictor) in enumerate(predictors.items()):
        left = deadline - time.perf_counter()
        if left <= 0:
            timing.out_of_time = list(predictors)[index:]
            break
        with registry.variants[name].lock:
            timing.measured[name] = host_latency(predictor, left / (len(predictors) - index), jpeg)
    by_size: dict[tuple[int, int], list[str]] = {}
    for name, predictor in predictors.items():
        by_size.setdefault((predictor.preprocess_config.height, predictor.preprocess_config.width), []).append(name)
    sizes = tuple(size for size in COST_SIZES if size[0] * size[1] <= max_pixels)
    for group in by_size.values():
        left = started + budget_s - time.perf_counter()
        if left <= 0:
            break
        curve = decode_cost(functools.partial(_prepare, predictors[group[0]], max_pixels), left / len(by_size), sizes)
        timing.decode.update(dict.fromkeys(group, curve))
    timing.seconds = round(time.perf_counter() - started, 2)
    log.info("timed %d variant(s) on this host in %.1fs (budget %gs)%s", len(timing.measured), timing.seconds,
             budget_s, f"; out of time, build figures kept for {', '.join(timing.out_of_time)}"
             if timing.out_of_time else "")
    return timing


def routing_figures(manifest: Mapping[str, Any], names: list[str],
                    timing: HostTiming | None) -> dict[str, VariantFigures]:
    """The figures /predict/auto routes on: the build's F1 with the serving host's latency where it was timed,
    the build's latency elsewhere; a variant with neither, or without an F1, is not routable."""
    figures = figures_from_manifest(manifest, names)
    if timing is None:
        return figures
    for name, built in figures.items():  # the decode curve is this host's even where the latency is the build's
        figures[name] = replace(built, decode=timing.decode.get(name))
    for name in names:
        scores, measured = f1_scores(manifest, name), timing.measured.get(name)
        if scores is None or measured is None:
            continue
        base = figures.get(name) or VariantFigures(name, scores[0], 0.0, 0.0, chosen_on=scores[1])
        figures[name] = with_host_timing(base, measured, "serving host: start-up", timing.decode.get(name))
    return figures
