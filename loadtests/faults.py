"""Fault-injection suite: each fault against a real uvicorn process (``python -m service``), by one command.

    python -m loadtests.faults --artifacts artifacts --out docs/faults.json

Faults: a batch worker that dies, bad items inside a full batch, a corrupt artifact at start-up, a slow
client trickling its body, clients that disconnect mid-request, and SIGTERM under load. Across the suite
it counts the requests the service accepted and got no answer for ("lost"), and every 5xx other than the
documented 503/504; the service must stay alive through each fault. Prints one line per check and
writes the figures to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtests.fault_harness import FaultContext
from loadtests.fault_scenarios import (
    bad_items_in_a_full_batch,
    client_disconnects,
    corrupt_artifact,
    sigterm_under_load,
    slow_client,
    worker_crash,
)
from loadtests.images import load_photos
from vitcore.hardware import cpu_facts

SCENARIOS: dict[str, Callable[[FaultContext], dict[str, Any]]] = {
    "worker-crash": worker_crash, "bad-items-in-a-full-batch": bad_items_in_a_full_batch,
    "corrupt-artifact": corrupt_artifact, "slow-client": slow_client, "client-disconnects": client_disconnects,
    "sigterm-under-load": sigterm_under_load,
}


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "requests": sum(r["requests"] for r in results),
        "lost": sum(r["lost"] for r in results),
        "unexpected_5xx": sum(len(r["unexpected_5xx"]) for r in results),
        "checks_failed": [f"{r['scenario']}: {name}" for r in results for name, ok in r["checks"].items() if not ok],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.faults", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", default="artifacts")
    p.add_argument("--images", default="../shared/datasets/cats_vs_dogs")
    p.add_argument("--variant", default="plain", help="the variant the faults are aimed at")
    p.add_argument("--only", default="", help="comma-separated scenario names (default: all)")
    p.add_argument("--out", default="", help="write the results as JSON here")
    p.add_argument("--logs", default="loadtests/reports/faults", help="folder for each server's log")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SCENARIOS)
    context = FaultContext(Path(args.artifacts), args.variant, load_photos(args.images, 16), Path(args.logs))
    results = []
    for name in names:
        result = SCENARIOS[name](context)
        results.append(result)
        for check, ok in result["checks"].items():
            print(f"{'PASS' if ok else 'FAIL'} {name}: {check}")
        print(f"     {name}: {result['requests']} requests, statuses {result['statuses']}, lost {result['lost']}, "
              f"unexpected 5xx {len(result['unexpected_5xx'])}")
    summary = summarise(results)
    print(f"suite: {summary['requests']} requests, {summary['lost']} lost, {summary['unexpected_5xx']} unexpected "
          f"5xx, {len(summary['checks_failed'])} failed checks")
    if args.out:
        command = f"python -m loadtests.faults --artifacts {args.artifacts} --variant {args.variant}"
        record = {"command": command, "machine": cpu_facts(), "summary": summary, "scenarios": results}
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return 0 if not summary["checks_failed"] and not summary["lost"] and not summary["unexpected_5xx"] else 1


if __name__ == "__main__":
    sys.exit(main())
