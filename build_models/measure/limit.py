"""How far each variant is from this machine's limit: its multiply-accumulates per image, counted on the torch
network it runs, over its measured model p50, against the GEMM peak of the precision it runs in."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from build_models.measure.peak import machine_peaks
from vitcore.backends.base import Predictor
from vitcore.catalogue import get_variant
from vitcore.hardware import cpu_facts

log = logging.getLogger(__name__)


def count_macs(predictor: Predictor) -> int | None:
    """Multiply-accumulates of one image through the predictor's torch module (None: it has none), at the
    predictor's own input size."""
    import torch

    module = getattr(predictor, "model", None)
    if not isinstance(module, torch.nn.Module):
        return None
    size = predictor.preprocess_config.height, predictor.preprocess_config.width
    pixels = torch.zeros(1, 3, *size).numpy()
    return macs_of_call(lambda: predictor.forward(pixels))


def macs_of_call(call: Callable[[], Any]) -> int:
    """Multiply-accumulates torch's FlopCounterMode counts in ``call()`` (matmuls, convolutions and attention's
    matmuls)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    # The math backend: CPU's fused attention kernel is not one the counter knows, so its matmuls went uncounted.
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), counter:
        call()
    return int(counter.get_total_flops() // 2)


def variant_macs(predictors: Mapping[str, Predictor], recorded: Mapping[str, int] | None = None) -> dict[str, int]:
    """Each variant's MACs per image, from the torch network it runs (its ``macs_source`` in the catalogue), or
    as its build recorded them (``recorded``: variants whose network exists only as an export)."""
    counted: dict[str, int | None] = {}
    macs = {}
    for name in predictors:
        if get_variant(name).macs_recorded:
            if recorded and recorded.get(name):
                macs[name] = int(recorded[name])
            continue
        source = get_variant(name).macs_source
        if source not in counted:
            counted[source] = count_macs(predictors[source]) if source in predictors else None
        if counted[source]:
            macs[name] = int(counted[source] or 0)
    return macs


def recorded_macs(variants: Mapping[str, Any]) -> dict[str, int]:
    """MACs the build recorded per variant (manifest ``variants``: their ``build.macs``)."""
    return {name: int(entry["build"]["macs"]) for name, entry in variants.items()
            if isinstance(entry.get("build"), dict) and entry["build"].get("macs")}


def limit_record(predictors: Mapping[str, Predictor], results: Mapping[str, Any], threads: int,
                 recorded: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The machine's GEMM peaks and, per variant, MACs, achieved GMAC/s at its model p50 and the share of its
    precision's peak that is; ``closest`` names the row nearest its limit."""
    peaks = machine_peaks(set(cpu_facts()["flags"]), threads=threads)
    rows = {}
    for name, macs in variant_macs(predictors, recorded).items():
        precision = get_variant(name).precision
        p50 = results.get(name, {}).get("model", {}).get("p50_ms")
        if not p50 or not peaks[precision]["applicable"]:
            continue
        achieved = macs / (p50 / 1000) / 1e9
        rows[name] = {"macs": macs, "gmacs": round(macs / 1e9, 4), "precision": precision,
                      "gmac_per_s": round(achieved, 2), "of_peak": round(achieved / peaks[precision]["gmac_per_s"], 4)}
    closest = max(rows, key=lambda n: rows[n]["of_peak"], default=None)
    return {"peaks": peaks, "rows": rows, "closest": closest}
