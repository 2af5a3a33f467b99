"""Load scenarios, one command each, bounded in time and count, on 127.0.0.1 only.

    python -m loadtests.scenarios saturation --variants plain,openvino-int8 --users 16 --run-time 30s
    python -m loadtests.scenarios soak --variants plain,onnx,openvino-int8 --users 8 --run-time 5m
    python -m loadtests.scenarios soak --variants plain --users 8 --run-time 5m --upscale 4000x3000 --label large
    python -m loadtests.scenarios bad-inputs --variants plain --users 4 --run-time 30s
    python -m loadtests.scenarios degrade --users 16 --run-time 60s

saturation: the same closed-loop load (no think time) with micro-batching off (max batch 1) and
on, side by side; prints throughput and p99 per variant and the ratios, plus /health/live
latency sampled during each run. soak: a long mixed run with the service's RSS sampled; prints
the growth after warm-up. bad-inputs: malformed requests mixed with good ones; every bad one must
get a 4xx JSON error, and nothing may get a 5xx. Each writes summary JSON under --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from loadtests.load_runs import five_hundreds, print_table, run_load, write_result


def saturation(args: argparse.Namespace) -> int:
    runs = {batch: run_load(args, f"saturation-batch{batch}", {"VITSERVE_MAX_BATCH_SIZE": str(batch),
                                                                  "VITSERVE_MAX_WAIT_MS": str(args.max_wait_ms)},
                            sample_interval_s=args.health_interval)
            for batch in (1, args.max_batch)}
    off, on = (({r["name"]: r for r in runs[b]["rows"]}) for b in (1, args.max_batch))
    batch = args.max_batch
    table = [{"name": name, "req/s batch 1": round(a["rps"], 1), f"req/s batch {batch}": round(b["rps"], 1),
              "throughput ratio": round(b["rps"] / max(a["rps"], 1e-9), 2), "p99 ms batch 1": a["p99_ms"],
              f"p99 ms batch {batch}": b["p99_ms"], "p99 ratio": round(b["p99_ms"] / max(a["p99_ms"], 1e-9), 2),
              "failures": a["failures"] + b["failures"]}
             for name, a in off.items() if (b := on.get(name))]
    print_table(table)
    notes = [f"max batch {size}: /health/live sampled every {args.health_interval:g} s during the run: "
             f"{run['health_live_ms']} ms; 5xx: {five_hundreds(run, Path(args.out))}" for size, run in runs.items()]
    print("\n".join(notes))
    write_result(args, "saturation", f"{args.users} users, no think time, {args.run_time} per setting, "
                 f"variants {args.variants}, max wait {args.max_wait_ms} ms", table, notes)
    return 0



def soak(args: argparse.Namespace) -> int:
    run = run_load(args, "soak", {}, sample_interval_s=2.0)
    samples = run["rss_mb"]
    warm = [rss for t, rss in samples if t >= args.warmup_s]
    window = max(1, min(15, len(warm) // 4))  # 30 s of 2-s samples: single samples swing with heap churn
    start, end = float(np.median(warm[:window])), float(np.median(warm[-window:]))
    growth = (end - start) / start if warm else float("nan")
    slope = np.polyfit([t for t, _ in samples if t >= args.warmup_s], warm, 1)[0] * 60 if len(warm) > 2 else 0.0
    aggregated = next(r for r in run["rows"] if r["name"] == "Aggregated")
    table = [{"requests": aggregated["requests"], "failures": aggregated["failures"],
              "5xx": five_hundreds(run, Path(args.out)), f"RSS MB after {args.warmup_s:.0f} s (median)": round(start),
              "RSS MB at the end (median)": round(end), "RSS growth": f"{growth:+.1%}",
              "trend MB/min": round(float(slope), 2),
              "peak RSS MB": round(max(rss for _, rss in samples)),
              "/health/live p99 ms": run["health_live_ms"].get("p99")}]
    print_table(table)
    photos = f"photos upscaled to {args.upscale} JPEG" if args.upscale else "photos as in the dataset"
    write_result(args, "soak", f"{args.users} users, {args.run_time}, think time 0-{args.wait_max:g} s, variants "
                 f"{args.variants}, {photos}", table, [])
    return 0 if aggregated["failures"] == 0 else 1


def bad_inputs(args: argparse.Namespace) -> int:
    run = run_load(args, "bad-inputs", {}, bad_ratio=args.bad_ratio)
    for row in run["rows"]:
        print(f"{row['name']:28s} {row['requests']:7d} requests, {row['failures']} failures")
    fives = five_hundreds(run, Path(args.out))
    failures = next(r for r in run["rows"] if r["name"] == "Aggregated")["failures"]
    print(f"bad inputs: {failures} failures, {fives} 5xx")
    table = [{"name": r["name"], "requests": r["requests"], "failures": r["failures"]} for r in run["rows"]]
    write_result(args, "bad-inputs", f"{args.users} users, {args.run_time}, {args.bad_ratio:.0%} malformed",
                 table, [f"{failures} failures, {fives} 5xx"])
    return 0 if failures == 0 and fives == 0 else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.scenarios", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=("saturation", "soak", "bad-inputs", "degrade"))
    p.add_argument("--artifacts", default="artifacts")
    p.add_argument("--variants", default="plain,openvino-int8")
    p.add_argument("--images", default="../shared/datasets/cats_vs_dogs")
    p.add_argument("--users", type=int, default=16)
    p.add_argument("--run-time", default="30s")
    p.add_argument("--wait-max", type=float, default=0.0, help="think time per user, 0 = closed loop")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--warmup-s", type=float, default=60.0, help="soak: RSS growth is measured after this")
    p.add_argument("--bad-ratio", type=float, default=0.3)
    p.add_argument("--upscale", default="", help="post photos resized to WxH, e.g. 4000x3000 (made in memory)")
    p.add_argument("--health-interval", type=float, default=0.1, help="saturation: /health/live sampling period, s")
    p.add_argument("--label", default="", help="suffix of the result file (<scenario>-<label>.json), e.g. vit-base")
    p.add_argument("--target", default="", help="degrade: the variant every request names (default: the most "
                   "accurate served one)")
    p.add_argument("--queue-size", type=int, default=4, help="degrade: VITSERVE_QUEUE_SIZE in both runs")
    p.add_argument("--margin", type=float, default=0.01, help="degrade: VITSERVE_DEGRADE_F1_MARGIN")
    p.add_argument("--out", default="loadtests/reports")
    p.add_argument("--ready-timeout", type=float, default=300)
    p.add_argument("--timeout", type=float, default=1200)
    args = p.parse_args(argv)
    from loadtests.degrade import degrade

    scenarios = {"saturation": saturation, "soak": soak, "bad-inputs": bad_inputs, "degrade": degrade}
    return scenarios[args.scenario](args)


if __name__ == "__main__":
    raise SystemExit(main())
