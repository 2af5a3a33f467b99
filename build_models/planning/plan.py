"""The build's plan, printed before any work: each phase, its size and its time on this machine.

Training time is measured: real steps of the base model at each training size (``step_costs``).
The other phases are estimated from a reference build (``reference.json``, written from a real
build's manifest by ``python -m build_models.planning.reference``), scaled by how fast this machine runs
the base model compared with the reference machine, and by how much work each phase is asked to do
(images, epochs, resolution). Every phase says which of the two it is.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from build_models.planning.step_costs import StepCosts, training_sizes
from build_models.profiles import BuildProfile
from vitcore.catalogue import BASE_VARIANT, get_variant, list_variants

REFERENCE_FILE = Path(__file__).with_name("reference.json")
BUDGET_MINUTES = 45.0
UNKNOWN_VARIANT_SECONDS = 60.0  # a variant the reference build did not have


@dataclass(frozen=True)
class Phase:
    name: str
    detail: str
    seconds: float
    basis: str  # "measured" (per-step costs timed now), "estimated" (reference build, scaled) or "done"


@dataclass
class BuildPlan:
    profile: str
    machine: str
    precision: str
    image_size: int
    phases: list[Phase] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(phase.seconds for phase in self.phases)

    def render(self) -> str:
        lines = [f"build plan: profile {self.profile} on {self.machine}, training precision {self.precision}"]
        width = max((len(p.name) for p in self.phases), default=10)
        for phase in self.phases:
            lines.append(f"  {phase.name:<{width}}  {_minutes(phase.seconds):>9}  {phase.basis:<9}  {phase.detail}")
        lines.append(f"  {'total':<{width}}  {_minutes(self.total_seconds):>9}")
        lines.extend(f"  hint: {hint}" for hint in self.hints)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "machine": self.machine, "precision": self.precision,
                "image_size": self.image_size,
                "total_minutes": round(self.total_seconds / 60, 1), "hints": self.hints,
                "phases": [{"name": p.name, "detail": p.detail, "minutes": round(p.seconds / 60, 2),
                            "basis": p.basis} for p in self.phases]}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


# Profiles without a reference build of their own: the closest one measured (the hub and seed base models are
# ViT-B/16, whose exact architecture the vit-base profile builds every variant of).
REFERENCE_OF = {"hub": "vit-base", "seed": "vit-base"}


def load_reference(profile: str, path: Path = REFERENCE_FILE) -> dict[str, Any]:
    """The profile's own reference build, else the closest one, else the offline one (scaled by the base
    model's measured cost)."""
    references = json.loads(path.read_text()) if path.exists() else {}
    reference: dict[str, Any] = (references.get(profile) or references.get(REFERENCE_OF.get(profile, ""))
                                 or references.get("offline") or {})
    return reference


@dataclass(frozen=True)
class PlanInputs:
    """What the plan is computed from: the profile, the split sizes, what is already built, measured costs."""

    profile: BuildProfile
    split_sizes: dict[str, int]  # {"train": n, "val": n, "test": n}
    variants: list[str]
    costs: StepCosts | None  # None: the base model is not trained here, or is already built
    precision: str
    base_built: bool = False
    variants_built: tuple[str, ...] = ()
    image_size: int = 224
    base_trains: bool = True  # False: the base model is used as is (a checkpoint already labelled cat/dog)


def training_phase(inputs: PlanInputs) -> Phase:
    """Steps at each size times their measured cost, plus one validation pass per ``eval_every_steps``."""
    profile, costs = inputs.profile, inputs.costs
    assert costs is not None
    config = profile.train
    steps_per_epoch = max(1, inputs.split_sizes["train"] // config.batch_size)
    steps = int((config.epochs or 0.0) * steps_per_epoch)
    sizes = training_sizes(config, inputs.image_size)
    low = int(steps * config.low_res_fraction) if len(sizes) > 1 else 0
    per_size = {sizes[0]: low, sizes[-1]: steps - low} if low else {sizes[-1]: steps}
    seconds = sum(count * costs.seconds[inputs.precision][size] for size, count in per_size.items())
    passes = math.ceil(steps / config.eval_every_steps) if steps else 0
    seconds += passes * inputs.split_sizes["val"] * costs.forward_ms_per_image / 1000
    detail = ", ".join(f"{count} steps at {size} px ({costs.seconds[inputs.precision][size]:.2f} s/step)"
                       for size, count in per_size.items())
    return Phase("base training", f"{config.epochs:g} epochs: {detail}, {passes} validation passes", seconds,
                 "measured")


def partial_phase(inputs: PlanInputs) -> Phase:
    """Caching the frozen prefix's states (one forward per image), then epochs over the trained tail
    (forward and backward: about three forwards of its share of the layers per image and epoch)."""
    partial, costs = inputs.profile.partial, inputs.costs
    assert partial is not None and costs is not None
    train = min(partial.train_images or inputs.split_sizes["train"], inputs.split_sizes["train"])
    images = train + min(partial.val_images, inputs.split_sizes["val"])
    layers = int(inputs.profile.options.get("num_hidden_layers", 12))
    tail = partial.epochs * train * 3 * partial.trainable_blocks / layers
    seconds = (images + tail) * costs.forward_ms_per_image / 1000
    return Phase("base training", f"cache states of {images} images, then {partial.epochs:g} epochs over the last "
                 f"{partial.trainable_blocks} blocks", seconds, "estimated")


def _eval_seconds_per_image(name: str, measured: dict[str, Any], inputs: PlanInputs,
                            reference: dict[str, Any]) -> float:
    """The reference's per-image evaluation time (decode, preprocessing, forward), with the base model's
    forward replaced by this one's, measured, for variants of the base model."""
    per_image = float(measured["eval_s"]) / max(1, measured["eval_images"])
    if get_variant(name).network == "student" or inputs.costs is None or not reference.get("forward_ms_per_image"):
        return per_image
    return max(per_image, per_image + (inputs.costs.forward_ms_per_image - reference["forward_ms_per_image"]) / 1000)


def _scale(inputs: PlanInputs, reference: dict[str, Any]) -> float:
    """How much slower this machine runs this profile's base model than the reference machine ran its own."""
    if inputs.costs is None or not reference.get("forward_ms_per_image"):
        return 1.0
    return inputs.costs.forward_ms_per_image / reference["forward_ms_per_image"]


def _work(options: dict[str, Any], keys: tuple[str, ...], image_size: int, train_images: int) -> float:
    """The product of a variant's work options; an absent one means all train images, the base model's size,
    or one epoch."""
    work = 1.0
    for key in keys:
        value = options.get(key)
        if key.endswith("_resolution"):
            work *= float(value or image_size) ** 2
        elif key.endswith("_images"):
            work *= float(value or train_images)
        else:
            work *= float(1.0 if value is None else value)
    return work


def variant_phase(name: str, inputs: PlanInputs, reference: dict[str, Any],
                  teacher_passes: set[tuple[Any, ...]] | None = None) -> Phase:
    """A variant's build and evaluation, from the reference build's time for it, scaled by this machine's speed
    on this base model and by the work its options ask for. A student adds the ViT's one pass over its photos,
    once per set of photos: students with the same ones share the cached logits."""
    measured = reference.get("variants", {}).get(name)
    if name in inputs.variants_built:
        return Phase(name, "already built with the same inputs", 0.0, "done")
    if measured is None:
        return Phase(name, "no reference measurement: a rough guess", UNKNOWN_VARIANT_SECONDS, "estimated")
    images = inputs.profile.eval_limit or inputs.split_sizes["test"]
    spec = get_variant(name)
    if inputs.profile.lossless_eval_limit and spec.lossless and name != BASE_VARIANT:
        images = min(images, inputs.profile.lossless_eval_limit)
    evaluation = images * _eval_seconds_per_image(name, measured, inputs, reference)
    build = float(measured["build_s"]) - float(measured.get("teacher_s", 0.0))
    keys = spec.work_options  # its build time scales with their product (resolutions squared)
    reference_work = _work(measured.get("options", {}), keys, reference.get("image_size") or inputs.image_size,
                           reference.get("train_images") or inputs.split_sizes["train"]) if keys else 0.0
    if reference_work > 0:  # a reference that did none of this work (0 epochs) leaves the build as it was
        build *= _work(inputs.profile.options, keys, inputs.image_size, inputs.split_sizes["train"]) / reference_work
    if spec.distilled:  # a student's training does not scale with the base model's size
        build += _teacher_pass_seconds(keys, inputs, reference, set() if teacher_passes is None else teacher_passes)
    elif spec.network == "base":
        build *= _scale(inputs, reference)
    return Phase(name, f"build + evaluation on {images} test images", build + evaluation, "estimated")


def _teacher_pass_seconds(keys: tuple[str, ...], inputs: PlanInputs, reference: dict[str, Any],
                          done: set[tuple[Any, ...]]) -> float:
    """The base model's one pass over a student's photos, at the base model's own resolution (the student's
    resolution does not enter it), unless an earlier student's pass over the same photos is reused."""
    photos = inputs.profile.options.get(keys[0]) or inputs.split_sizes["train"]
    if (photos,) in done:
        return 0.0
    done.add((photos,))
    per_image = reference.get("student_teacher_s_per_image")
    if per_image:  # measured on the reference machine with its base model at its resolution
        return float(photos * per_image * _teacher_scale(inputs, reference))
    forward_ms = inputs.costs.forward_ms_per_image if inputs.costs else 0.0
    return float(photos * forward_ms / 1000)


def _teacher_scale(inputs: PlanInputs, reference: dict[str, Any]) -> float:
    """This base model's measured cost against the reference's; unmeasured, the ratio of their input areas."""
    if inputs.costs is not None and reference.get("forward_ms_per_image"):
        return _scale(inputs, reference)
    return float((inputs.image_size / reference["student_teacher_resolution"]) ** 2)


def teacher_phase(inputs: PlanInputs, reference: dict[str, Any]) -> Phase | None:
    teacher = inputs.profile.teacher
    if teacher is None or inputs.base_built or not reference.get("teacher_ms_per_image"):
        return None
    images = sum(inputs.split_sizes.values()) + 2 * teacher.normalisation_check_images
    per_image = reference["teacher_ms_per_image"] * (teacher.resolution / reference["teacher_resolution"]) ** 2
    return Phase("teacher", f"EfficientNet-Lite0 at {teacher.resolution} px over {images} images",
                 images * per_image / 1000, "estimated")


def latency_phase(inputs: PlanInputs, reference: dict[str, Any]) -> Phase:
    runs = inputs.profile.latency_runs
    forward_s = (inputs.costs.forward_ms_per_image - reference.get("forward_ms_per_image", 0.0)) / 1000 \
        if inputs.costs and reference.get("forward_ms_per_image") else 0.0
    per_run = reference.get("latency_s_per_variant_run", 0.05) + max(0.0, forward_s) * 3  # both modes, warm-up
    return Phase("latency table", f"{len(inputs.variants)} variants x {runs} timed runs",
                 len(inputs.variants) * runs * per_run, "estimated")


def cascade_phase(inputs: PlanInputs, reference: dict[str, Any]) -> Phase:
    """Every cascade candidate (plain and the variants that are not lossless copies of it) scores the
    validation images once."""
    images = min(int(inputs.profile.options.get("cascade_val_images", 1000)), inputs.split_sizes["val"])
    seconds = 0.0
    for name in inputs.variants:
        measured = reference.get("variants", {}).get(name)
        if measured is None or not get_variant(name).cascade_candidate:
            continue
        seconds += images * _eval_seconds_per_image(name, measured, inputs, reference)
    return Phase("cascade", f"candidates score {images} validation images; calibration, pair and threshold",
                 seconds, "estimated")


def make_plan(inputs: PlanInputs, machine: str, reference: dict[str, Any] | None = None) -> BuildPlan:
    reference = load_reference(inputs.profile.name) if reference is None else reference
    plan = BuildPlan(inputs.profile.name, machine, inputs.precision, inputs.image_size)
    teacher = teacher_phase(inputs, reference)
    if teacher is not None:
        plan.phases.append(teacher)
    if inputs.base_built:
        plan.phases.append(Phase("base training", "already built with the same inputs", 0.0, "done"))
    elif inputs.base_trains and inputs.costs is not None and inputs.profile.partial is not None:
        plan.phases.append(partial_phase(inputs))
    elif inputs.base_trains and inputs.profile.train.epochs and inputs.costs is not None \
            and inputs.precision in inputs.costs.seconds:
        plan.phases.append(training_phase(inputs))
    teacher_passes: set[tuple[Any, ...]] = set()
    plan.phases.extend(variant_phase(name, inputs, reference, teacher_passes) for name in inputs.variants)
    plan.phases.append(latency_phase(inputs, reference))
    plan.phases.append(cascade_phase(inputs, reference))
    plan.hints = hints_for(plan, inputs)
    return plan


def hints_for(plan: BuildPlan, inputs: PlanInputs) -> list[str]:
    left_out = [name for name in list_variants() if name not in inputs.variants]
    hints = [f"not in this build: {', '.join(left_out)} (`--variants all` builds every variant)"] if left_out else []
    if plan.total_seconds <= BUDGET_MINUTES * 60:
        return hints
    hints.append(f"estimated {plan.total_seconds / 60:.0f} min, over the {BUDGET_MINUTES:.0f}-minute budget:")
    if inputs.precision == "fp32" and any(p.name == "base training" and p.basis == "measured" for p in plan.phases):
        hints.append(_precision_hint(inputs.costs))
    hints.append("`--device cuda` trains and evaluates the torch variants on a GPU")
    slow = sorted(plan.phases, key=lambda p: p.seconds, reverse=True)[:2]
    hints.append("the longest phases are " + " and ".join(f"{p.name} ({_minutes(p.seconds)})" for p in slow)
                 + "; `--variants` builds a subset, `--eval-limit N` scores on a stratified N-image subset")
    if inputs.profile.name in ("seed", "hub"):
        hints.append("`--profile offline` builds every variant of a smaller ViT from the local dataset; "
                     "`--plan` prints its plan")
    return hints


def _precision_hint(costs: StepCosts | None) -> str:
    """What this CPU measured for fp32 against bf16 at the largest training size."""
    bf16 = (costs.seconds.get("bf16") or {}) if costs else {}
    size = max(bf16, default=0)
    fp32 = costs.seconds.get("fp32", {}).get(size) if costs else None
    if not fp32:
        return "this CPU trains in fp32 (bf16 was not measured here)"
    ratio = bf16[size] / fp32
    return f"this CPU trains fastest in fp32: a bf16 step measured {ratio:.1f}x an fp32 step at {size} px"
