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
import csv
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from build_models.hardware import cpu_facts
from loadtests.run import HOST, LOCUSTFILE, free_port, read_stats, wait_ready


class Sampler(threading.Thread):
    """Every ``interval_s``: /health/live latency and the service's RSS, until stopped."""

    def __init__(self, port: int, pid: int, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.port, self.pid, self.interval_s = port, pid, interval_s
        self.health_ms: list[float] = []
        self.rss_mb: list[tuple[float, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stopped.wait(self.interval_s):
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/health/live", timeout=5) as response:
                    response.read()
                self.health_ms.append((time.perf_counter() - t0) * 1000)
            except OSError:
                self.health_ms.append(5000.0)
            self.rss_mb.append((time.monotonic() - started, _rss_mb(self.pid)))


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_load(args: argparse.Namespace, name: str, service_env: dict[str, str], bad_ratio: float = 0.0,
             sample_interval_s: float = 0.25, target: str | None = None, query: str = "") -> dict[str, Any]:
    """Start the service with ``service_env``, drive Locust, sample health and RSS; one summary."""
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "VITSERVE_ARTIFACTS_DIR": str(args.artifacts), "VITSERVE_HOST": HOST,
           "VITSERVE_PORT": str(port), "VITSERVE_VARIANTS": args.variants, "USE_TF": "0", **service_env}
    weights = target or ",".join(f"{v}:1" for v in args.variants.split(","))
    locust_env = {**os.environ, "LOCUST_VARIANTS": weights, "LOCUST_IMAGES": args.images, "LOCUST_WAIT_MIN": "0",
                  "LOCUST_WAIT_MAX": str(args.wait_max), "LOCUST_BAD_RATIO": str(bad_ratio),
                  "LOCUST_UPSCALE": args.upscale, "LOCUST_QUERY": query,
                  "LOCUST_SERVED_FILE": str(out / "served.json")}
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", f"http://{HOST}:{port}",
               "-u", str(args.users), "-r", str(args.users), "-t", args.run_time, "--stop-timeout", "10",
               "--csv", str(out / "locust"), "--only-summary", "--exit-code-on-error", "0"]
    with open(out / "service.log", "wb") as service_log, open(out / "locust.log", "wb") as locust_log:
        service = subprocess.Popen([sys.executable, "-m", "service"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=service_log)
        try:
            wait_ready(port, args.ready_timeout, service)
            sampler = Sampler(port, service.pid, sample_interval_s)
            sampler.start()
            subprocess.run(command, env=locust_env, check=True, timeout=args.timeout, stdout=locust_log,
                           stderr=subprocess.STDOUT)
            sampler.stopped.set()
            sampler.join()
        finally:
            service.terminate()
            service.wait(timeout=30)
    served = json.loads((out / "served.json").read_text()) if (out / "served.json").exists() else {}
    summary = {"scenario": name, "service_env": service_env, "rows": read_stats(out / "locust"),
               "health_live_ms": _percentiles(sampler.health_ms), "rss_mb": sampler.rss_mb, "served": served}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    p50, p99 = np.percentile(values, [50, 99])
    return {"count": len(values), "p50": round(float(p50), 2), "p99": round(float(p99), 2),
            "max": round(max(values), 2)}


def five_hundreds(summary: dict[str, Any], out: Path) -> int:
    """Responses with a 5xx status, from Locust's failure log (one row per distinct error, with its count)."""
    failures = out / summary["scenario"] / "locust_failures.csv"
    if not failures.exists():
        return 0
    with open(failures, newline="") as handle:
        return sum(int(row["Occurrences"]) for row in csv.DictReader(handle) if "HTTP 5" in row["Error"])


def write_result(args: argparse.Namespace, scenario: str, command: str, table: list[dict[str, Any]],
                 notes: list[str]) -> None:
    """<out>/<scenario>.json: the printed figures as rows, for docs/ and the README generator."""
    name = f"{scenario}-{args.label}" if args.label else scenario
    machine = cpu_facts()
    notes = [*notes, f"machine: {machine['model']}, {machine['usable_cores']} usable cores, flags "
             f"{' '.join(machine['flags'])}"]
    result = {"scenario": name, "command": f"{command}, artifacts {args.artifacts}", "table": table, "notes": notes}
    (Path(args.out) / f"{name}.json").write_text(json.dumps(result, indent=2))


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


def print_table(table: list[dict[str, Any]]) -> None:
    if not table:
        return
    columns = list(table[0])
    print(" | ".join(columns))
    for row in table:
        print(" | ".join(str(row[c]) for c in columns))


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
