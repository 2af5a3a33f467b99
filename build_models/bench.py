"""``python -m build_models.bench``: time every built variant side by side and rewrite the report."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vitcore.timing import MODE_CHOICES, BenchConfig, benchmark_many, reference_jpeg


def print_limit(limit: dict[str, Any]) -> None:
    for precision, peak in limit["peaks"].items():
        print(f"{precision} GEMM peak: " + (f"{peak['gmac_per_s']} GMAC/s ({peak['gemm']}, runs as "
                                             f"{'/'.join(peak['runtime_precision'])})" if peak["applicable"]
                                             else peak["reason"]))
    for name, row in limit["rows"].items():
        print(f"{name:24s} {row['gmacs']:8.3f} GMAC/image {row['gmac_per_s']:8.2f} GMAC/s = {row['of_peak']:.1%} "
              f"of the {row['precision']} peak")


def main(argv: list[str] | None = None) -> int:
    from build_models.measure.limit import limit_record, recorded_macs
    from build_models.reporting.report import write_report
    from vitcore.catalogue import resolve_selection
    from vitcore.hardware import machine_record
    from vitcore.loading import load_predictors
    from vitcore.logs import configure_logging
    from vitcore.manifest import Manifest
    from vitcore.threads import ThreadSettings

    p = argparse.ArgumentParser(prog="python -m build_models.bench",
                                description="Measure every built variant side by side and rewrite the report.")
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--variants", default="all")
    p.add_argument("--runs", type=int, default=30, help="timed calls per variant and mode")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds the runs are spread over")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--mode", choices=MODE_CHOICES, default="both")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-floor", action="store_true", help="skip the peak-matmul fp32 floor measurement")
    args = p.parse_args(argv)
    configure_logging()
    manifest = Manifest.load(args.artifacts)
    threads = ThreadSettings.for_every_runtime(args.threads)
    names = [n for n in resolve_selection(args.variants) if manifest.variants.get(n, {}).get("status") == "ok"]
    config = BenchConfig(runs=args.runs, warmup=args.warmup, batch_size=args.batch_size, mode=args.mode,
                         rounds=args.rounds)
    predictors = load_predictors(manifest, names, threads)
    results = benchmark_many(predictors, config, reference_jpeg())
    for name, row in results.items():
        for mode in config.modes:
            stats = row[mode]
            flag = "  (within plain's spread)" if stats["overlaps_plain"] and name != "plain" else ""
            print(f"{name:24s} {mode:10s} p50 {stats['p50_ms']:9.2f} ms  IQR {stats['p25_ms']:.2f}-"
                  f"{stats['p75_ms']:.2f}  p99 {stats['p99_ms']:8.2f}  x{stats['speedup_vs_plain']}{flag}")
    manifest.data["latency"] = {"config": asdict(config), "results": results,
                                "machine": machine_record(threads, predictors),
                                "limit": limit_record(predictors, results, args.threads,
                                                      recorded_macs(manifest.variants))}
    print_limit(manifest.data["latency"]["limit"])
    if not args.no_floor:
        from build_models.measure.flops import fp32_floor

        floor = fp32_floor(args.artifacts / "base", threads=args.threads)
        plain = results.get("plain", {}).get("model", {}).get("p50_ms")
        floor["plain_vs_floor"] = round(plain / floor["floor_ms"], 3) if plain else None
        manifest.data["latency"]["fp32_floor"] = floor
        print(f"fp32 floor: {floor['gflop_per_image']} GFLOP / {floor['peak_gflops']} GFLOP/s peak = "
              f"{floor['floor_ms']} ms; plain is {floor['plain_vs_floor']}x the floor")
    manifest.save()
    print(f"report: {write_report(manifest)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
