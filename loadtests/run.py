"""Headless load test: start the service on loopback, run Locust for a bounded time, report per variant.

    python -m loadtests.run --variants plain:2,onnx:1 --users 4 --run-time 30s

Writes CSV and HTML reports under --out and prints requests/s, p50/p95/p99 and failures for
each variant. Only ever targets 127.0.0.1.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, timeout_s: float, service: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise RuntimeError(f"the service exited with code {service.returncode}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the service was not ready within {timeout_s:.0f}s")


def read_stats(csv_prefix: Path) -> list[dict[str, Any]]:
    rows = []
    with open(f"{csv_prefix}_stats.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append({
                "name": row["Name"], "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                "rps": float(row["Requests/s"]), "p50_ms": float(row["50%"] or 0), "p95_ms": float(row["95%"] or 0),
                "p99_ms": float(row["99%"] or 0), "mean_ms": float(row["Average Response Time"] or 0),
            })
    return rows


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = args.port or free_port()
    variants = ",".join(item.split(":")[0] for item in args.variants.split(","))
    env = {**os.environ, "VITSERVE_ARTIFACTS_DIR": str(args.artifacts), "VITSERVE_HOST": HOST,
           "VITSERVE_PORT": str(port), "VITSERVE_VARIANTS": variants, "USE_TF": "0"}
    with open(out / "service.log", "wb") as service_log, open(out / "locust.log", "wb") as locust_log:
        service = subprocess.Popen([sys.executable, "-m", "service"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=service_log)
        _drive(args, port, service, locust_log)
    rows = read_stats(out / "locust")
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    return rows


def _drive(args: argparse.Namespace, port: int, service: subprocess.Popen[bytes], log: Any) -> None:
    out = Path(args.out)
    try:
        wait_ready(port, args.ready_timeout, service)
        locust_env = {**os.environ, "LOCUST_VARIANTS": args.variants, "LOCUST_IMAGES": args.images,
                      "LOCUST_WAIT_MIN": str(args.wait_min), "LOCUST_WAIT_MAX": str(args.wait_max)}
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host",
                   f"http://{HOST}:{port}", "-u", str(args.users), "-r", str(args.spawn_rate), "-t", args.run_time,
                   "--stop-timeout", "5", "--csv", str(out / "locust"), "--html", str(out / "locust.html"),
                   "--only-summary", "--exit-code-on-error", "0"]
        subprocess.run(command, env=locust_env, check=True, timeout=args.timeout, stdout=log,
                       stderr=subprocess.STDOUT)
    finally:
        service.terminate()
        service.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", default="artifacts")
    p.add_argument("--variants", default="plain", help="name:weight,... (e.g. plain:2,onnx:1)")
    p.add_argument("--images", default="../shared/datasets/cats_vs_dogs", help="photo folder or parquet dataset")
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--spawn-rate", type=float, default=2.0)
    p.add_argument("--run-time", default="30s")
    p.add_argument("--wait-min", type=float, default=0.1)
    p.add_argument("--wait-max", type=float, default=0.5)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--out", default="loadtests/reports")
    p.add_argument("--ready-timeout", type=float, default=300)
    p.add_argument("--timeout", type=float, default=900, help="hard limit for the Locust process, seconds")
    args = p.parse_args(argv)
    rows = run(args)
    print(f"{'name':28s} {'requests':>9s} {'fail':>5s} {'req/s':>7s} {'p50':>7s} {'p95':>7s} {'p99':>7s} (ms)")
    for row in rows:
        print(f"{row['name']:28s} {row['requests']:9d} {row['failures']:5d} {row['rps']:7.2f} "
              f"{row['p50_ms']:7.0f} {row['p95_ms']:7.0f} {row['p99_ms']:7.0f}")
    print(f"reports: {args.out}/locust_stats.csv, {args.out}/locust.html")
    return 0 if all(row["failures"] == 0 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
