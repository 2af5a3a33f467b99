"""Latency measurement shared by the build report, ``python -m build_models.bench`` and /benchmark."""

from __future__ import annotations

import contextlib
import functools
import io
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

from vitcore.backends.base import Predictor
from vitcore.preprocessing import decode_image

MODES = ("model", "end_to_end")
MODE_CHOICES = (*MODES, "both")


@dataclass(frozen=True)
class BenchConfig:
    runs: int = 30  # timed calls per variant and mode, spread over ``rounds``
    warmup: int = 5
    batch_size: int = 1
    mode: str = "both"  # "model", "end_to_end" or "both"
    rounds: int = 5  # interleaved rounds: every variant is timed in each, so drift hits all alike
    settle_ms: float = 50.0  # pause before each variant's slice: other runtimes' spinning threads go idle

    @property
    def modes(self) -> tuple[str, ...]:
        if self.mode not in MODE_CHOICES:
            raise ValueError(f"mode must be one of {MODE_CHOICES}")
        return MODES if self.mode == "both" else (self.mode,)


@dataclass
class LatencyStats:
    mean_ms: float
    std_ms: float
    p10_ms: float
    p25_ms: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    throughput_ips: float
    runs: int
    batch_size: int

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def summarize(durations_s: Sequence[float], batch_size: int) -> LatencyStats:
    ms = np.asarray(durations_s) * 1000.0
    p10, p25, p50, p75, p90, p99 = (float(v) for v in np.percentile(ms, [10, 25, 50, 75, 90, 99]))
    return LatencyStats(
        mean_ms=float(ms.mean()), std_ms=float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
        p10_ms=p10, p25_ms=p25, p50_ms=p50, p75_ms=p75, p90_ms=p90, p99_ms=p99,
        throughput_ips=float(batch_size * 1000.0 / p50), runs=len(ms), batch_size=batch_size,
    )


def time_calls(call: Callable[[], object], runs: int, warmup: int,
               guard: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext) -> list[float]:
    """Durations of ``runs`` calls after ``warmup``; ``guard()`` is held around each call only, so a
    lock it takes is released between runs (and the wait for it is not timed)."""
    for _ in range(warmup):
        with guard():
            call()
    durations = []
    for _ in range(runs):
        with guard():
            start = time.perf_counter()
            call()
            durations.append(time.perf_counter() - start)
    return durations


def reference_jpeg(image: Image.Image | None = None) -> bytes:
    """The JPEG that end-to-end mode decodes: a given photo, or a fixed synthetic one."""
    if image is None:
        rng = np.random.default_rng(0)
        image = Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def timed_call(predictor: Predictor, mode: str, batch_size: int, jpeg: bytes) -> Callable[[], object]:
    """'model': forward on a fixed preprocessed batch. 'end_to_end': JPEG bytes to probabilities
    through the variant's own path (for the pipeline variants, the pipeline call itself)."""
    if mode == "model":
        batch = predictor.preprocess([decode_image(jpeg)] * batch_size)
        return lambda: predictor.forward(batch)
    if mode == "end_to_end":
        return lambda: predictor.predict_images([decode_image(jpeg) for _ in range(batch_size)])
    raise ValueError(f"mode must be one of {MODES}")


def benchmark_predictor(predictor: Predictor, config: BenchConfig, jpeg: bytes) -> dict[str, Any]:
    """One predictor, every mode of ``config``: {mode: stats}."""
    return benchmark_many({"_": predictor}, config, jpeg)["_"]


def _overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when the interquartile ranges overlap: the difference is within this run's noise."""
    return bool(a["p25_ms"] <= b["p75_ms"] and b["p25_ms"] <= a["p75_ms"])


def benchmark_many(
    predictors: dict[str, Predictor], config: BenchConfig, jpeg: bytes,
    guard: Callable[[str], AbstractContextManager[Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every predictor and mode timed in interleaved rounds of one run; medians, spreads, ratios to plain.

    ``guard(name)`` is held around each timed call of that variant (the service passes the
    variant's lock, so /predict traffic waits at most for one call).
    """
    calls = {(name, mode): timed_call(p, mode, config.batch_size, jpeg)
             for name, p in predictors.items() for mode in config.modes}
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    rounds = max(1, min(config.rounds, config.runs))
    for round_index in range(rounds):
        runs = config.runs // rounds + (1 if round_index < config.runs % rounds else 0)
        for name in predictors:
            held = functools.partial(guard, name) if guard else contextlib.nullcontext
            time.sleep(config.settle_ms / 1000)
            for mode in config.modes:
                # One untimed call per slice: the previous variant's runtime (ONNX Runtime, TF and
                # OpenMP spin-wait) must not be timed as this one's cost.
                warmup = config.warmup if round_index == 0 else 1
                samples[name, mode] += time_calls(calls[name, mode], runs, warmup, held)
    results: dict[str, dict[str, Any]] = {
        name: {mode: summarize(samples[name, mode], config.batch_size).as_dict() for mode in config.modes}
        for name in predictors
    }
    plain = results.get("plain")
    for row in results.values():
        for mode in config.modes:
            stats = row[mode]
            stats["speedup_vs_plain"] = round(plain[mode]["p50_ms"] / stats["p50_ms"], 3) if plain else None
            stats["overlaps_plain"] = _overlaps(stats, plain[mode]) if plain else None
        if set(MODES) <= set(row):
            row["service_overhead_ms"] = round(row["end_to_end"]["p50_ms"] - row["model"]["p50_ms"], 3)
    return results




# --- On-host figures for routing: a bounded warm-up, then runs until a stable median or the time is spent ---

REFERENCE_PIXELS = 200 * 200  # the image of ``reference_jpeg()``, which end-to-end mode decodes
COST_SIZES = ((200, 200), (640, 480), (1600, 1200), (4000, 3000))  # decode + preprocess timed at these sizes


def time_for(call: Callable[[], object], budget_s: float, warmup: int = 2, min_runs: int = 5,
             max_runs: int = 21) -> list[float]:
    """Durations of ``call`` after ``warmup`` untimed calls: at least ``min_runs``, then more until
    ``max_runs`` or until ``budget_s`` (warm-up included) is spent. A call slower than the budget still
    gets its ``min_runs``: fewer would give no median worth routing on."""
    started = time.perf_counter()
    for _ in range(warmup):
        call()
    durations: list[float] = []
    while len(durations) < max_runs and (len(durations) < min_runs or time.perf_counter() - started < budget_s):
        begin = time.perf_counter()
        call()
        durations.append(time.perf_counter() - begin)
    return durations


@functools.cache
def synthetic_jpeg(width: int, height: int) -> bytes:
    """A photo-like JPEG of the given size (smooth gradients plus grain, so it compresses like a photo)."""
    grain = np.random.default_rng(0).integers(0, 24, (height, width), dtype=np.uint8)
    across = (np.arange(width) * 200 // max(width, 1)).astype(np.uint8)[None, :]
    down = (np.arange(height) * 200 // max(height, 1)).astype(np.uint8)[:, None]
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = across + grain, down + grain, across // 2 + down // 2 + grain
    return reference_jpeg(Image.fromarray(pixels))


@dataclass(frozen=True)
class CostCurve:
    """Milliseconds as a function of pixels, measured at a few points: linear between them, flat beyond."""

    points: tuple[tuple[int, float], ...]  # (pixels, median ms), ascending pixels

    def at(self, pixels: int) -> float:
        xs, ys = zip(*self.points, strict=True)
        return float(np.interp(pixels, xs, ys))

    def as_dict(self) -> dict[str, Any]:
        return {"pixels": [p for p, _ in self.points], "p50_ms": [round(ms, 3) for _, ms in self.points]}


def decode_cost(prepare: Callable[[bytes], object], budget_s: float,
                sizes: Sequence[tuple[int, int]] = COST_SIZES) -> CostCurve:
    """The median cost of ``prepare(jpeg)`` (decode + preprocess) at each of ``sizes``, as a curve by pixels."""
    jpegs = [(w * h, synthetic_jpeg(w, h)) for w, h in sizes]
    per_size = budget_s / max(len(jpegs), 1)
    return CostCurve(tuple((pixels, float(np.median(time_for(functools.partial(prepare, data), per_size, warmup=1,
                                                             min_runs=3))) * 1000)
                           for pixels, data in jpegs))


def host_latency(predictor: Predictor, budget_s: float, jpeg: bytes) -> dict[str, dict[str, Any]]:
    """One predictor's model and end-to-end latency (batch of 1) on this host, with its own thread settings,
    within about ``budget_s``: {mode: stats}."""
    time.sleep(0.02)  # the previous runtime's spinning threads go idle first
    return {mode: summarize(time_for(timed_call(predictor, mode, 1, jpeg), budget_s / len(MODES)), 1).as_dict()
            for mode in MODES}
