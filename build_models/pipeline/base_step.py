"""The build's first step: the base model, loaded and (where the profile says so) trained into artifacts/base."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from build_models.context import BuildContext, TrainData
from build_models.pipeline.request import BASE_DIR, WORK_DIR, BuildRequest
from build_models.profiles import BuildProfile
from build_models.sources.base_model import BaseModelSource, LoadedBase, load_base_model
from build_models.sources.dataset import LabelledImages, Splits, split_hash
from build_models.sources.overlap import evaluation_overlap
from build_models.training.loop import TrainConfig, train_classifier
from build_models.training.teacher import Teacher
from vitcore.hashing import json_digest
from vitcore.preprocessing import PreprocessConfig
from vitcore.threads import ThreadSettings

if TYPE_CHECKING:
    from build_models.training.partial import CachedStates

log = logging.getLogger(__name__)


def _fingerprint(payload: dict[str, Any]) -> str:
    return json_digest(payload)


def base_fingerprint(profile: BuildProfile, data: LabelledImages, splits: Splits) -> str:
    """Everything the base model depends on: its source, the split, the recipe, the teacher."""
    partial = asdict(profile.partial) if profile.partial else None
    return _fingerprint({"source": BaseModelSource.parse(profile.base_model).describe(),
                         "split": split_hash_of(data, splits), "train": asdict(profile.train),
                         "teacher": asdict(profile.teacher) if profile.teacher else None,
                         **({"partial": partial} if partial else {})})


def built_base_info(root: Path, fingerprint: str) -> dict[str, Any] | None:
    info_file = root / BASE_DIR / "build_info.json"
    if info_file.exists():
        info: dict[str, Any] = json.loads(info_file.read_text())
        if info.get("fingerprint") == fingerprint:
            return info
    return None


def ensure_base_model(request: BuildRequest, data: LabelledImages, splits: Splits) -> dict[str, Any]:
    """Load or train the base model into artifacts/base, unless an identical one is already there."""
    profile, root = request.profile, request.artifacts_dir
    source = BaseModelSource.parse(profile.base_model)
    fingerprint = base_fingerprint(profile, data, splits)
    base_dir = root / BASE_DIR
    built = built_base_info(root, fingerprint)
    if built is not None:
        return built
    request.threads.apply_torch()
    loaded = load_base_model(source, data.label_names, profile.train.seed)
    info: dict[str, Any] = {"source": source.describe(), "kind": source.kind, "fingerprint": fingerprint,
                            "parameters": sum(p.numel() for p in loaded.model.parameters())}
    if loaded.provenance:
        info["provenance"] = loaded.provenance
    overlap = evaluation_overlap(source.ref, loaded.provenance, profile.dataset, from_hub=source.kind == "hub") \
        if source.kind in ("hub", "local") else None
    if overlap:
        log.warning("not held out: %s", overlap["note"])
        info["evaluation_overlap"] = overlap
    budget_is_zero = (profile.train.epochs == 0.0) or (profile.train.minutes == 0.0)
    if loaded.needs_training and profile.partial is not None:
        info.update(train_base_partial(request, loaded, data, splits, fingerprint))
    elif loaded.needs_training and not budget_is_zero:
        info.update(train_base(request, loaded, data, splits, fingerprint))
    else:
        reason = "budget is zero" if budget_is_zero else "already labelled cat/dog: used as is"
        info["training"] = {"recipe": "none", "reason": reason, "weights": loaded.weights}
    if base_dir.exists():
        shutil.rmtree(base_dir)
    loaded.model.save_pretrained(str(base_dir), safe_serialization=True)
    loaded.preprocess.save(base_dir)
    (base_dir / "build_info.json").write_text(json.dumps(info, indent=2))
    return info


def base_context(root: Path, threads: ThreadSettings, preprocess: PreprocessConfig, data: LabelledImages,
                 splits: Splits) -> BuildContext:
    """The context the base model's own training reads its pixels through (cached under ``root``/.work)."""
    return BuildContext(base_dir=root / BASE_DIR, out_dir=root / BASE_DIR, work_dir=root / WORK_DIR / "base",
                        label_names=data.label_names, preprocess=preprocess, threads=threads,
                        options={}, data=data, splits=splits, cache_dir=root / WORK_DIR / "cache")


def training_inputs(profile: BuildProfile, root: Path, threads: ThreadSettings, preprocess: PreprocessConfig,
                    data: LabelledImages, splits: Splits) -> tuple[TrainData, dict[str, Any]]:
    """The base model's train/val pixels (cached under ``root``/.work) and, with a teacher, its cached
    targets; the dict holds the teacher's record for the manifest."""
    ctx = base_context(root, threads, preprocess, data, splits)
    train_data = ctx.train_data()
    info: dict[str, Any] = {}
    if profile.teacher is not None:
        teacher = Teacher(profile.teacher, data, splits, root / WORK_DIR / "teacher", ctx.cache_dir, threads)
        train_data.targets, info["teacher"] = teacher.build(len(train_data.train_labels), data.label_names)
    return train_data, info


def train_base(request: BuildRequest, loaded: LoadedBase, data: LabelledImages, splits: Splits,
               fingerprint: str) -> dict[str, Any]:
    """Train the base ViT (with the cached teacher targets when the profile names a teacher)."""
    profile, root = request.profile, request.artifacts_dir
    train_data, info = training_inputs(profile, root, request.threads, loaded.preprocess, data, splits)
    started = time.perf_counter()
    result = train_classifier(loaded.model, train_data, profile.train, root / WORK_DIR / "base",
                              {"fingerprint": fingerprint}, device=request.device)
    info["training"] = {"recipe": loaded.recipe, "weights": loaded.weights, "config": asdict(profile.train),
                        "device": request.device, "wall_minutes": round((time.perf_counter() - started) / 60, 2),
                        "distillation": distillation_recipe(profile.train) if profile.teacher else "none",
                        **asdict(result)}
    return info


def partial_states(profile: BuildProfile, root: Path, threads: ThreadSettings, loaded: LoadedBase,
                   data: LabelledImages, splits: Splits) -> CachedStates:
    """The frozen prefix's hidden states for the train and validation images (cached under ``root``/.work)."""
    from build_models.training.partial import cache_states

    assert profile.partial is not None
    ctx = base_context(root, threads, loaded.preprocess, data, splits)
    key = {"source": BaseModelSource.parse(profile.base_model).describe(), "split": split_hash_of(data, splits),
           "size": loaded.preprocess.height, "seed": profile.partial.seed}
    return cache_states(loaded.model, profile.partial, {"train": ctx.pixels("train"), "val": ctx.pixels("val")},
                        loaded.preprocess, root / WORK_DIR / "states", key, threads.resolved().openvino_threads)


def train_base_partial(request: BuildRequest, loaded: LoadedBase, data: LabelledImages, splits: Splits,
                       fingerprint: str) -> dict[str, Any]:
    """Fine-tune the last blocks of a pretrained base on cached inputs to them (``profile.partial``)."""
    from build_models.training.partial import recipe_record, train_tail

    profile, root = request.profile, request.artifacts_dir
    assert profile.partial is not None
    request.threads.apply_torch()
    states = partial_states(profile, root, request.threads, loaded, data, splits)
    result = train_tail(loaded.model, states, profile.partial, root / WORK_DIR / "base", fingerprint)
    return {"training": {"recipe": f"last {profile.partial.trainable_blocks} blocks fine-tuned on cached inputs",
                         "weights": loaded.weights, "device": "cpu", "distillation": "none",
                         "partial": recipe_record(profile.partial, states),
                         "wall_minutes": round(states.minutes + result.minutes, 2), **asdict(result)}}


def distillation_recipe(config: TrainConfig) -> str:
    """The distillation losses in words, as the report prints them."""
    parts = [f"token loss x{config.feature_weight:g}" if config.feature_weight else "",
             f"class-token loss x{config.pooled_weight:g}" if config.pooled_weight else "",
             f"layer-{config.tap_layer} mid-level token loss x{config.tap_weight:g}" if config.tap_weight else "",
             f"logit KD alpha {config.distill_alpha:g} at T={config.distill_temperature:g}" if config.distill_alpha
             else "no logit KD"]
    return "cached teacher targets: " + ", ".join(p for p in parts if p)


def split_hash_of(data: LabelledImages, splits: Splits) -> str:
    return "/".join(split_hash(data.ids, rows)[:16] for rows in splits.as_dict().values())
