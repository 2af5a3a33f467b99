"""One load run against a real service process (Locust headless, sampled /health/live and RSS), and how its
result is summarised, printed and written: shared by every scenario."""

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

from loadtests.run import HOST, LOCUSTFILE, free_port, read_stats, wait_ready
from vitcore.hardware import cpu_facts


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


def print_table(table: list[dict[str, Any]]) -> None:
    if not table:
        return
    columns = list(table[0])
    print(" | ".join(columns))
    for row in table:
        print(" | ".join(str(row[c]) for c in columns))
