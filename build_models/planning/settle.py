"""Before any work: measure this machine, settle the training precision and length, print the plan."""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from build_models.planning.plan import BuildPlan, PlanInputs
from build_models.planning.step_costs import RememberedCosts, StepCosts, costs_key, measure_step_costs, training_sizes
from build_models.profiles import BuildProfile
from build_models.sources.base_model import BaseModelSource, load_base_model
from vitcore.hardware import cpu_class, cpu_facts
from vitcore.threads import ThreadSettings

log = logging.getLogger(__name__)

TEACHER_FEATURE_DIMS = (1280, 112)  # EfficientNet-Lite0's last map and its tap block's channels


def _trains_here(profile: BuildProfile, needs_training: bool) -> bool:
    """Whether the base model is trained in this build (a full run, or its last blocks on cached states)."""
    return needs_training and (profile.partial is not None or bool(profile.train.epochs))


def measured_costs(profile: BuildProfile, threads: ThreadSettings, device: str, label_names: list[str],
                   work_dir: Path) -> tuple[StepCosts | None, bool, int]:
    """The base model's step costs on this CPU (remembered per artifacts folder), whether it trains here, and
    its input size. On a GPU nothing is measured: the CPU's figures would say nothing about it."""
    threads.apply_torch()
    loaded = load_base_model(BaseModelSource.parse(profile.base_model), label_names, profile.train.seed)
    size = loaded.preprocess.height
    trains = _trains_here(profile, loaded.needs_training)
    if device != "cpu":
        return None, trains, size
    steps_here = trains and profile.partial is None  # the partial fine-tune is estimated from forward passes
    sizes = training_sizes(profile.train, size) if steps_here else []
    precisions = (["fp32", "bf16"] if profile.train.precision == "auto" else [profile.train.precision]) \
        if steps_here else []
    key = dict(costs_key(profile.base_model, profile.train, sizes, threads.resolved().torch_intra_op),
               precisions=precisions)
    remembered = RememberedCosts(work_dir / "step-costs.json")
    costs = remembered.load(key)
    if costs is None:
        dims = TEACHER_FEATURE_DIMS if profile.teacher is not None else (None, None)
        costs = measure_step_costs(loaded.model, profile.train, sizes, precisions,
                                   (dims[0] if profile.train.feature_weight else None,
                                    dims[1] if profile.train.tap_weight else None), size)
        remembered.save(key, costs)
    return costs, trains, size


def settle_training(profile: BuildProfile, costs: StepCosts | None, size: int, device: str) -> BuildProfile:
    """The precision measured fastest here (for "auto" on the CPU) and the epochs the profile gives it."""
    config = profile.train
    if device != "cpu" or costs is None or not costs.seconds:
        return profile
    precision = costs.faster_precision(size) if config.precision == "auto" else config.precision
    epochs = config.epochs
    if precision == "fp32" and profile.fp32_train_epochs is not None:
        epochs = profile.fp32_train_epochs
    return replace(profile, train=replace(config, precision=precision, epochs=epochs))


def machine_line() -> str:
    facts = cpu_facts()
    return f"{facts['model']} ({cpu_class(facts['flags'])}, {facts['usable_cores']} cores usable)"


def print_plan(plan: BuildPlan) -> None:
    """To stderr, before the work, so it is the first thing a user reads."""
    print(plan.render(), file=sys.stderr, flush=True)


def plan_inputs(profile: BuildProfile, split_sizes: dict[str, int], variants: list[str], costs: StepCosts | None,
                size: int, built: dict[str, Any], trains: bool) -> PlanInputs:
    precision = profile.train.precision if profile.train.precision != "auto" else "fp32"
    return PlanInputs(profile=profile, split_sizes=split_sizes, variants=variants, costs=costs,
                      precision=precision, base_built=built.get("base", False),
                      variants_built=tuple(built.get("variants", ())), image_size=size, base_trains=trains)


def choice_line(costs: StepCosts | None, settled: BuildProfile, size: int) -> str | None:
    """"training in bf16 for 20 epochs (measured at 96 px: fp32 0.38 s/step, bf16 0.22 s/step)"."""
    if costs is None or not costs.seconds:
        return None
    measured = ", ".join(f"{p} {by_size[size]:.2f} s/step" for p, by_size in costs.seconds.items() if size in by_size)
    return (f"training in {settled.train.precision} for {settled.train.epochs:g} epochs "
            f"(measured at {size} px: {measured})")
