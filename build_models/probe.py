"""``python -m build_models.probe``: measure one training recipe of a profile's base model.

Trains the profile's base model from its starting weights for ``--steps`` optimizer steps, with
``--set field=value`` overrides of the profile's ``TrainConfig``, on the build's own cached pixels
and teacher targets (under ``<artifacts>/.work``, made on first use), and prints the validation
accuracy with the steps, epochs and wall minutes. For a profile that fine-tunes the last blocks of a
pretrained model (``dinov2``) the overrides are ``PartialTuneConfig`` fields and its ``epochs`` and
``train_images`` set the budget; the cached states are the build's own (a build with the same
settings reuses them). The record replaces any with the same label in
``--out`` (default ``docs/probes-<profile>.json``), from which the README's recipe table is
generated. Compare recipes at equal steps, or pick the steps so that they take equal wall time.
A probe is resumable: rerun the same command after an interruption.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from build_models.profiles import PROFILE_NAMES, PROJECT_ROOT, BuildProfile, get_profile
from build_models.training.loop import TrainConfig
from build_models.training.partial import PartialTuneConfig
from vitcore.hashing import json_digest

TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
PARTIAL_FIELDS = {f.name for f in dataclasses.fields(PartialTuneConfig)}
# The settings a probe row shows as they were in effect (the profile's values change over time; overrides alone
# would not say what a row trained with).
RECIPE_FIELDS = ("precision", "low_res_fraction", "lr", "distill_alpha", "feature_weight", "pooled_weight",
                 "tap_weight", "tap_layer")


def parse_overrides(pairs: list[str], partial: bool = False) -> dict[str, Any]:
    """``["lr=1e-3", "precision=bf16"]`` -> typed values (JSON where it parses, else the string)."""
    overrides: dict[str, Any] = {}
    known, kind = (PARTIAL_FIELDS, "PartialTuneConfig") if partial else (TRAIN_FIELDS, "TrainConfig")
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in known:
            fields = ", ".join(sorted(known))
            raise SystemExit(f"error: --set takes field=value with a {kind} field ({fields})")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def probe_config(profile: BuildProfile, steps: int, steps_per_epoch: int, overrides: dict[str, Any]) -> TrainConfig:
    """The profile's recipe, budgeted to exactly ``steps`` steps (evaluated once, at the end, unless overridden)."""
    config = dataclasses.replace(profile.train, minutes=None, epochs=steps / steps_per_epoch, eval_every_steps=steps)
    return dataclasses.replace(config, **overrides)


def run_probe(profile: BuildProfile, artifacts: Path, steps: int, overrides: dict[str, Any], label: str,
              device: str = "cpu") -> dict[str, Any]:
    from build_models.pipeline.base_step import WORK_DIR, training_inputs
    from build_models.sources.base_model import BaseModelSource, load_base_model
    from build_models.sources.dataset import load_labelled_images, make_splits
    from build_models.training.loop import train_classifier
    from vitcore.hardware import cpu_facts
    from vitcore.threads import ThreadSettings

    threads = ThreadSettings()
    threads.apply_torch()
    data = load_labelled_images(profile.dataset)
    splits = make_splits(data.labels, profile.split)
    loaded = load_base_model(BaseModelSource.parse(profile.base_model), data.label_names, profile.train.seed)
    train_data, _ = training_inputs(profile, artifacts, threads, loaded.preprocess, data, splits)
    config = probe_config(profile, steps, len(train_data.train_labels) // profile.train.batch_size, overrides)
    key = json_digest([profile.name, steps, overrides], 12)
    started = time.perf_counter()
    result = train_classifier(loaded.model, train_data, config, artifacts / WORK_DIR / "probes" / key,
                              {"probe": key}, device=device)
    recipe = {name: getattr(config, name) for name in RECIPE_FIELDS} | {"precision": result.precision}
    return {"label": label, "profile": profile.name, "overrides": overrides, "recipe": recipe, "steps": result.steps,
            "epochs": round(result.epochs, 2), "minutes": round(result.minutes, 2),
            "val_accuracy": result.history[-1]["val_accuracy"] if result.history else result.best_val_accuracy,
            "precision": result.precision, "cpu_flags": cpu_facts()["flags"],
            "this_invocation_minutes": round((time.perf_counter() - started) / 60, 2)}


def run_partial_probe(profile: BuildProfile, artifacts: Path, overrides: dict[str, Any], label: str) -> dict[str, Any]:
    """One last-blocks fine-tuning recipe of a pretrained profile, on the build's cached states."""
    from build_models.pipeline.base_step import WORK_DIR, partial_states
    from build_models.sources.base_model import BaseModelSource, load_base_model
    from build_models.sources.dataset import load_labelled_images, make_splits
    from build_models.training.partial import train_tail
    from vitcore.hardware import cpu_facts
    from vitcore.threads import ThreadSettings

    assert profile.partial is not None
    config = dataclasses.replace(profile.partial, **overrides)
    threads = ThreadSettings()
    threads.apply_torch()
    data = load_labelled_images(profile.dataset)
    splits = make_splits(data.labels, profile.split)
    loaded = load_base_model(BaseModelSource.parse(profile.base_model), data.label_names, config.seed)
    states = partial_states(dataclasses.replace(profile, partial=config), artifacts, threads, loaded, data, splits)
    key = json_digest([profile.name, dataclasses.asdict(config)], None)
    result = train_tail(loaded.model, states, config, artifacts / WORK_DIR / "probes" / key[:12], key)
    return {"label": label, "profile": profile.name, "overrides": overrides, "kind": "partial",
            "recipe": dataclasses.asdict(config), "steps": result.steps, "epochs": round(result.epochs, 2),
            "train_images": len(states.train), "val_images": len(states.val), "cache_precision": states.precision,
            "cache_minutes": round(states.minutes, 2), "minutes": round(result.minutes, 2),
            "val_accuracy": result.history[-1]["val_accuracy"], "best_val_accuracy": result.best_val_accuracy,
            "cpu_flags": cpu_facts()["flags"]}


def record(out: Path, entry: dict[str, Any]) -> None:
    entries = json.loads(out.read_text()) if out.exists() else []
    entries = [e for e in entries if e["label"] != entry["label"]] + [entry]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(entries, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m build_models.probe", description=__doc__)
    p.add_argument("--profile", choices=PROFILE_NAMES, default="offline")
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="whose .work caches to use")
    p.add_argument("--steps", type=int, help="optimizer steps (the cosine schedule spans them); not for profiles "
                   "that fine-tune the last blocks, whose epochs and train_images set the budget")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a TrainConfig field of the profile (repeatable)")
    p.add_argument("--label", required=True, help="the recipe's name in the table")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--out", type=Path, help="results file (default docs/probes-<profile>.json)")
    args = p.parse_args(argv)
    os.environ.setdefault("USE_TF", "0")
    profile = get_profile(args.profile)
    if profile.partial is not None:
        entry = run_partial_probe(profile, args.artifacts, parse_overrides(args.overrides, partial=True), args.label)
    elif args.steps is None:
        raise SystemExit(f"error: --steps is required for profile {profile.name}")
    else:
        entry = run_probe(profile, args.artifacts, args.steps, parse_overrides(args.overrides), args.label,
                          args.device)
    record(args.out or PROJECT_ROOT / "docs" / f"probes-{profile.name}.json", entry)
    print(json.dumps(entry))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
