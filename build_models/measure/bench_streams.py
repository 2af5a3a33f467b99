"""OpenVINO's two ways to use the cores, side by side in one run, for the service's micro-batches.

    python -m build_models.measure.bench_streams --artifacts artifacts --variants openvino,openvino-int8

LATENCY: one infer request per batch on every thread. THROUGHPUT: the plugin's streams, the
batch split over an ``AsyncInferQueue`` (what ``VITSERVE_OPENVINO_HINT=THROUGHPUT`` does). Every
batch size of every variant is timed under both hints in the same rounds, alternating which goes
first; prints p50 per batch, images per second, the THROUGHPUT/LATENCY ratio, and the streams
each compiled model got. Outputs of the two are checked equal.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HINTS = ("LATENCY", "THROUGHPUT")


def _time_ms(call: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call(batch)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    from vitcore.hardware import cpu_facts
    from vitcore.loading import load_predictor
    from vitcore.manifest import Manifest
    from vitcore.threads import ThreadSettings

    p = argparse.ArgumentParser(prog="python -m build_models.measure.bench_streams", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--variants", default="openvino,openvino-int8")
    p.add_argument("--batch-sizes", default="1,8")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--runs", type=int, default=10, help="timed calls per round, batch size, variant and hint")
    args = p.parse_args(argv)
    manifest = Manifest.load(args.artifacts)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    print(f"machine: {cpu_facts()}")
    for name in args.variants.split(","):
        predictors = {hint: load_predictor(manifest, name, ThreadSettings(openvino_hint=hint)) for hint in HINTS}
        config = predictors["LATENCY"].preprocess_config
        rng = np.random.default_rng(0)
        times: dict[tuple[str, int], list[float]] = {(h, s): [] for h in HINTS for s in sizes}
        for size in sizes:
            batch = rng.standard_normal((size, 3, config.height, config.width), dtype=np.float32)
            outputs = [predictors[h].forward(batch) for h in HINTS]
            assert np.allclose(outputs[0], outputs[1], atol=1e-4), f"{name}: the hints disagree at batch {size}"
            for hint in HINTS:
                _time_ms(predictors[hint].forward, batch, 2)  # warm-up
            for r in range(args.rounds):
                for hint in (HINTS if r % 2 == 0 else HINTS[::-1]):
                    times[(hint, size)] += _time_ms(predictors[hint].forward, batch, args.runs)
        streams = {h: predictors[h].applied_settings()["openvino_num_streams"] for h in HINTS}
        print(f"\n{name}: streams LATENCY {streams['LATENCY']}, THROUGHPUT {streams['THROUGHPUT']}")
        print(f"{'batch':>5s} {'LATENCY p50 ms':>15s} {'img/s':>7s} {'THROUGHPUT p50 ms':>18s} {'img/s':>7s} "
              f"{'ratio':>6s}")
        for size in sizes:
            latency, throughput = (statistics.median(times[(h, size)]) for h in HINTS)
            print(f"{size:5d} {latency:15.2f} {size / latency * 1000:7.1f} {throughput:18.2f} "
                  f"{size / throughput * 1000:7.1f} {latency / throughput:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
