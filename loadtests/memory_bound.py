"""Memory at the limit: every variant served, many large bodies at once, the service's RSS sampled throughout.

    python -m loadtests.memory_bound --artifacts artifacts --clients 48 --requests 96

Starts a real ``python -m service`` on 127.0.0.1 with the given byte budget, measures its RSS once ready
(every variant loaded: the baseline), then posts large photo-like JPEGs from many clients at once, spread over
every variant; a client answered 503 retries after its Retry-After, as a well-behaved client does. Prints the
peak RSS against the worst case the settings allow (``worst_case``) and the answers by status; every request
must end 200, with no 5xx but the documented, retried 503.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil

from loadtests.run import HOST, free_port, wait_ready
from vitcore.timing import synthetic_jpeg

MiB = 1 << 20
CONNECTION_BYTES = 128 * 1024  # per open connection: uvicorn's read buffer (flow control at 64 KiB) and objects
DECODE_BYTES_PER_PIXEL = 10  # one decode's peak: RGBA (4) + its RGB conversion (3) + the composite on white (3)
SLACK_BYTES = 64 * MiB  # forward passes' activations of the smoke models, allocator fragmentation


def worst_case(baseline: int, settings: dict[str, int]) -> dict[str, int]:
    """What the settings let the process hold beyond its loaded variants, term by term (bytes)."""
    return {"baseline (variants loaded)": baseline, "admitted bytes (VITSERVE_MAX_QUEUED_BYTES)": settings["queued"],
            "decodes at once x largest image": settings["decode_concurrency"] * settings["pixels"]
            * DECODE_BYTES_PER_PIXEL,
            "connections x read buffer": settings["connections"] * CONNECTION_BYTES, "slack": SLACK_BYTES}


def _post_until_answered(url: str, path: str, body: bytes, tries: int = 60) -> list[int]:
    statuses = []
    with httpx.Client(timeout=120) as client:
        for _ in range(tries):
            try:
                answer = client.post(f"{url}{path}", content=body, headers={"content-type": "image/jpeg"})
                statuses.append(answer.status_code)
            except httpx.TransportError:
                statuses.append(0)  # the connection was refused or closed: retried like a 503
                time.sleep(1.0)
                continue
            if answer.status_code != 503:
                break
            time.sleep(float(answer.headers.get("retry-after", "1")))
    return statuses


def run(artifacts: Path, log_file: Path, clients: int, requests: int, queued: int = 48 * MiB,
        body: tuple[int, int] = (4000, 3000)) -> dict[str, Any]:
    settings = {"queued": queued, "decode_concurrency": 2, "pixels": 16_000_000, "connections": clients + 16}
    port = free_port()
    env = {**os.environ, "VITSERVE_ARTIFACTS_DIR": str(artifacts), "VITSERVE_HOST": HOST, "VITSERVE_PORT": str(port),
           "VITSERVE_MAX_QUEUED_BYTES": str(queued), "VITSERVE_MAX_BODY_BYTES": str(queued // 4),
           "VITSERVE_DECODE_CONCURRENCY": str(settings["decode_concurrency"]),
           "VITSERVE_MAX_IMAGE_PIXELS": str(settings["pixels"]),
           "VITSERVE_MAX_CONNECTIONS": str(settings["connections"]),
           "VITSERVE_STARTUP_TIMING_S": "0", "USE_TF": "0"}
    jpeg = synthetic_jpeg(*body)
    with open(log_file, "wb") as handle:
        service = subprocess.Popen([sys.executable, "-m", "service"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=handle)
        try:
            wait_ready(port, 300, service)
            url = f"http://{HOST}:{port}"
            names = [v["name"] for v in httpx.get(f"{url}/variants", timeout=30).json()["variants"] if v["available"]]
            process = psutil.Process(service.pid)
            baseline = process.memory_info().rss
            peak, done = [baseline], threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak.append(process.memory_info().rss)
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                answers = list(pool.map(lambda i: _post_until_answered(url, f"/predict/{names[i % len(names)]}", jpeg),
                                        range(requests)))
            seconds = time.perf_counter() - started
            done.set()
            sampler.join()
        finally:
            service.terminate()
            service.wait(timeout=30)
    terms = worst_case(baseline, settings)
    every = Counter(status for statuses in answers for status in statuses)
    return {"variants": len(names), "clients": clients, "requests": requests, "body_bytes": len(jpeg),
            "seconds": round(seconds, 1), "baseline_mb": round(baseline / MiB), "peak_mb": round(max(peak) / MiB),
            "bound_mb": round(sum(terms.values()) / MiB), "terms_mb": {k: round(v / MiB) for k, v in terms.items()},
            "final_status": dict(Counter(statuses[-1] for statuses in answers)), "every_answer": dict(every)}


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.memory_bound", description=__doc__)
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--clients", type=int, default=48)
    p.add_argument("--requests", type=int, default=96)
    p.add_argument("--queued-mb", type=int, default=48)
    p.add_argument("--log", type=Path, default=Path("memory-bound-service.log"))
    args = p.parse_args()
    result = run(args.artifacts, args.log, args.clients, args.requests, args.queued_mb * MiB)
    print(json.dumps(result, indent=2))
    return 0 if result["peak_mb"] <= result["bound_mb"] and set(result["final_status"]) == {200} else 1


if __name__ == "__main__":
    raise SystemExit(main())
