"""Latency measurement shared by the build report, ``python -m build_models.bench`` and /benchmark."""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from build_models.predictor import Predictor
from build_models.preprocessing import decode_image

MODES = ("model", "end_to_end")


@dataclass(frozen=True)
class BenchConfig:
    runs: int = 30
    warmup: int = 5
    batch_size: int = 1
    mode: str = "model"


@dataclass
class LatencyStats:
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput_ips: float
    runs: int
    batch_size: int

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def summarize(durations_s: Sequence[float], batch_size: int) -> LatencyStats:
    ms = np.asarray(durations_s) * 1000.0
    return LatencyStats(
        mean_ms=float(ms.mean()), std_ms=float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
        p50_ms=float(np.percentile(ms, 50)), p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)), throughput_ips=float(batch_size * 1000.0 / ms.mean()),
        runs=len(ms), batch_size=batch_size,
    )


def time_calls(call: Callable[[], object], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    durations = []
    for _ in range(runs):
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


def benchmark_predictor(predictor: Predictor, config: BenchConfig, jpeg: bytes) -> LatencyStats:
    """Time one loaded predictor: forward only ('model') or decode + preprocess + forward."""
    if config.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    if config.mode == "model":
        image = decode_image(jpeg)
        batch = predictor.preprocess([image] * config.batch_size)

        def call() -> object:
            return predictor.forward(batch)
    else:
        def call() -> object:
            return predictor.predict_images([decode_image(jpeg) for _ in range(config.batch_size)])
    return summarize(time_calls(call, config.runs, config.warmup), config.batch_size)


def benchmark_many(
    predictors: dict[str, Predictor], config: BenchConfig, jpeg: bytes,
    guard: Callable[[str], AbstractContextManager[Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every predictor measured in the same run; speedups relative to `plain` when it is there.

    ``guard(name)`` is held while one variant is timed (the service passes its per-variant lock,
    so /predict traffic waits at most for one variant's measurement).
    """
    results = {}
    for name, predictor in predictors.items():
        with (guard(name) if guard else contextlib.nullcontext()):
            results[name] = benchmark_predictor(predictor, config, jpeg).as_dict()
    baseline = results.get("plain", {}).get("mean_ms")
    for stats in results.values():
        stats["speedup_vs_plain"] = round(baseline / stats["mean_ms"], 3) if baseline else None
    return results


def main(argv: list[str] | None = None) -> int:
    from build_models.loading import load_predictors
    from build_models.manifest import Manifest
    from build_models.registry import resolve_selection
    from build_models.report import write_report
    from build_models.threads import ThreadSettings

    p = argparse.ArgumentParser(prog="python -m build_models.bench",
                                description="Measure every built variant side by side and rewrite the report.")
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--variants", default="all")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--mode", choices=MODES, default="model")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-floor", action="store_true", help="skip the peak-matmul fp32 floor measurement")
    args = p.parse_args(argv)
    manifest = Manifest.load(args.artifacts)
    threads = ThreadSettings(torch_intra_op=args.threads, ort_intra_op=args.threads,
                             openvino_threads=args.threads, tf_intra_op=args.threads)
    names = [n for n in resolve_selection(args.variants) if manifest.variants.get(n, {}).get("status") == "ok"]
    config = BenchConfig(runs=args.runs, warmup=args.warmup, batch_size=args.batch_size, mode=args.mode)
    results = benchmark_many(load_predictors(manifest, names, threads), config, reference_jpeg())
    for name, stats in results.items():
        print(f"{name:24s} {stats['mean_ms']:9.2f} ± {stats['std_ms']:7.2f} ms  p50 {stats['p50_ms']:8.2f}  "
              f"p99 {stats['p99_ms']:8.2f}  {stats['throughput_ips']:8.1f} img/s  x{stats['speedup_vs_plain']}")
    manifest.data["latency"] = {"config": asdict(config), "threads": threads.as_dict(), "results": results}
    if not args.no_floor:
        from build_models.flops import fp32_floor

        floor = fp32_floor(args.artifacts / "base", threads=args.threads)
        plain = results.get("plain", {}).get("mean_ms")
        floor["plain_vs_floor"] = round(plain / floor["floor_ms"], 3) if plain else None
        manifest.data["latency"]["fp32_floor"] = floor
        print(f"fp32 floor: {floor['gflop_per_image']} GFLOP / {floor['peak_gflops']} GFLOP/s peak = "
              f"{floor['floor_ms']} ms; plain is {floor['plain_vs_floor']}x the floor")
    manifest.save()
    print(f"report: {write_report(manifest)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
