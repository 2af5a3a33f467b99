"""``python -m build_models``: build the base model and every variant into artifacts/."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from build_models.profiles import PROFILE_NAMES, default_profile_name, get_profile
from vitcore.catalogue import list_variants
from vitcore.errors import VitserveError
from vitcore.logs import configure_logging
from vitcore.threads import ThreadSettings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m build_models", description=__doc__)
    p.add_argument("--profile", choices=PROFILE_NAMES,
                   help="build profile (default: hub where the hub answers, else offline)")
    p.add_argument("--fine-tune", action="store_true",
                   help="where the hub answers: reproduce the seed's own fine-tune of google/vit-base-patch16-224 "
                        "(profile seed; hours on a CPU, its estimate is logged after 5 steps) instead of using a "
                        "checkpoint already fine-tuned on cats vs dogs")
    p.add_argument("--dataset", help="hub dataset id or local folder in the same parquet layout")
    p.add_argument("--base-model", help="hub id, local checkpoint folder, or scratch:<preset>")
    p.add_argument("--train-minutes", type=float, help="training time budget in minutes")
    p.add_argument("--train-epochs", type=float, help="training length in epochs (with or instead of minutes)")
    p.add_argument("--variants", help="'all' or a comma-separated list of variant names (default: the profile's "
                   "own set, every variant but where its description says otherwise)")
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="output folder (default: artifacts)")
    p.add_argument("--seed", type=int, help="seed of the split and the training")
    p.add_argument("--limit", type=int, help="use a stratified subset of this many images")
    p.add_argument("--eval-limit", type=int, help="score on a stratified subset of N test images (each F1 "
                   "carries its bootstrap confidence interval)")
    p.add_argument("--plan", action="store_true", help="print the build plan (phases and time estimates on this "
                   "machine, measured training step costs) and exit")
    p.add_argument("--threads", type=int, default=0, help="threads for every runtime (0 = all cores)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="torch device for training and the torch predictors' evaluation (auto: cuda if available)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                   help="training precision (auto: bf16 autocast where native: AMX CPUs, bf16 GPUs; else fp32)")
    p.add_argument("--student-base", help="starting weights of distilled-resnet18: hub id or local folder")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="set one of the profile's per-variant options (repeatable), e.g. distill_epochs=3; "
                        "the value is read as JSON when it parses, else kept as text")
    p.add_argument("--force", action="store_true", help="rebuild variants that are already built")
    p.add_argument("--list", action="store_true", help="list the registered variants and exit")
    p.add_argument("--verbose", action="store_true", help="let third-party libraries log at INFO too")
    return p


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["distill_epochs=3", "resnet18_base=./rn18"]`` -> ``{"distill_epochs": 3, "resnet18_base": "./rn18"}``."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --option {pair!r} is not KEY=VALUE")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def resolve_device(choice: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without one is an error."""
    import torch

    available = torch.cuda.is_available()
    if choice == "cuda" and not available:
        raise SystemExit("error: --device cuda, but torch sees no CUDA device")
    return "cuda" if choice == "cuda" or (choice == "auto" and available) else "cpu"


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.fine_tune and args.profile not in (None, "seed"):
        p.error(f"--fine-tune is the seed profile's fine-tune; it does not combine with --profile {args.profile}")
    configure_logging(verbose=args.verbose)
    if args.list:
        for name in list_variants():
            print(name)
        return 0
    os.environ.setdefault("USE_TF", "0")  # TensorFlow is imported only by the variant that needs it
    from build_models.pipeline.build import BuildRequest, run_build

    profile = get_profile(args.profile or ("seed" if args.fine_tune else default_profile_name())).with_overrides(
        dataset=args.dataset, base_model=args.base_model, train_minutes=args.train_minutes,
        train_epochs=args.train_epochs, train_precision=args.precision, seed=args.seed, limit=args.limit,
        eval_limit=args.eval_limit,
    )
    threads = ThreadSettings.for_every_runtime(args.threads)
    options = dict(profile.options, **parse_options(args.option))
    if args.student_base:
        options["resnet18_base"] = args.student_base
    profile = profile.with_overrides(options=options)
    request = BuildRequest(profile=profile, artifacts_dir=args.artifacts, variants=args.variants or profile.variants,
                           force=args.force, threads=threads, device=resolve_device(args.device),
                           plan_only=args.plan)
    try:
        manifest = run_build(request)
    except VitserveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.plan:
        return 0
    report = args.artifacts / "report.md"
    failed = [n for n, e in manifest.variants.items() if e.get("status") != "ok"]
    print(f"manifest: {args.artifacts / 'manifest.json'}  report: {report}")
    if failed:
        print(f"failed variants: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
