"""Every built variant timed side by side, one image, the same threads; recorded in the manifest."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

from build_models.measure.evaluate import TestImages
from build_models.measure.limit import limit_record, recorded_macs
from build_models.pipeline.request import BuildRequest
from vitcore.catalogue import resolve_selection
from vitcore.hardware import machine_record
from vitcore.loading import load_predictors
from vitcore.manifest import Manifest
from vitcore.timing import BenchConfig, benchmark_many, reference_jpeg

log = logging.getLogger(__name__)


def measure_latency(request: BuildRequest, manifest: Manifest, test: TestImages) -> None:
    """Every built variant timed side by side, one image, same threads; recorded in the manifest."""

    names = [n for n in resolve_selection("all") if manifest.variants.get(n, {}).get("status") == "ok"]
    config = BenchConfig(runs=request.profile.latency_runs, warmup=max(3, request.profile.latency_runs // 6))
    log.info("measuring latency of %d variants (%d runs each)", len(names), config.runs)
    started = time.perf_counter()
    predictors = load_predictors(manifest, names, request.threads)
    results = benchmark_many(predictors, config, reference_jpeg(test.images[0]))
    manifest.data["latency"] = {"config": asdict(config), "results": results,
                                "machine": machine_record(request.threads, predictors),
                                # the GEMM peaks run with the latency table's threads
                                "limit": limit_record(predictors, results, request.threads.resolved().openvino_threads,
                                                      recorded_macs(manifest.variants)),
                                "seconds": round(time.perf_counter() - started, 1)}
