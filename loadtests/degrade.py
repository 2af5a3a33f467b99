"""The degrade scenario: every request names the most accurate variant, closed loop, with a small queue.

Run twice with the same load: VITSERVE_DEGRADE=0 (a saturated variant answers 503) and =1 with
``allow_degrade=true`` (a cheaper variant whose measured F1 is within the margin answers instead).
Prints answered requests per second of both, their ratio, the 5xx count, and the mean served F1:
each answer weighted by the measured test F1 of the variant that gave it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from loadtests.answers import answered_figures
from loadtests.load_runs import print_table, run_load, write_result


def most_accurate(manifest: dict[str, Any], served: list[str]) -> str:
    scored = [n for n in served if manifest["variants"].get(n, {}).get("metrics", {}).get("f1") is not None]
    return max(scored, key=lambda n: manifest["variants"][n]["metrics"]["f1"])


def served_f1(manifest: dict[str, Any], served: dict[str, int]) -> float | None:
    total = sum(served.values())
    if not total:
        return None
    return sum(count * manifest["variants"][name]["metrics"]["f1"] for name, count in served.items()) / total


def degrade(args: argparse.Namespace) -> int:
    manifest = json.loads((Path(args.artifacts) / "manifest.json").read_text())
    served_names = [n for n, e in manifest["variants"].items() if e.get("status") == "ok"] \
        if args.variants == "all" else args.variants.split(",")
    args.variants = ",".join(served_names)
    target = args.target or most_accurate(manifest, served_names)
    common = {"VITSERVE_QUEUE_SIZE": str(args.queue_size), "VITSERVE_DEGRADE_F1_MARGIN": str(args.margin)}
    runs = {on: run_load(args, f"degrade-{'on' if on else 'off'}", {**common, "VITSERVE_DEGRADE": str(int(on))},
                         target=target, query="allow_degrade=true") for on in (False, True)}
    table = []
    for on, run in runs.items():
        figures = answered_figures(run["served"])
        f1 = served_f1(manifest, figures["answered by"])
        table.append({"degradation": "on" if on else "off", **figures,
                      "mean served F1": None if f1 is None else round(f1, 4)})
    ratio = table[1]["answered req/s"] / max(table[0]["answered req/s"], 1e-9)
    print_table(table)
    notes = [f"every request named {target} (measured F1 {manifest['variants'][target]['metrics']['f1']:.4f}); "
             f"throughput ratio on/off {ratio:.2f}x; queue size {args.queue_size}, margin {args.margin:g}"]
    print(notes[0])
    write_result(args, "degrade", f"{args.users} users, no think time, {args.run_time} per setting, variants "
                 f"{args.variants}", table, notes)
    return 0
