"""Distillation into a student served beside the ViT, with the ViT's outputs computed once.

The teacher is the base model the student serves beside. Its logits for each training image are
computed in one pass (OpenVINO, precision chosen by measured speed) and cached on disk in
resumable chunks, keyed by everything that changes them: the model file's sha256, the train rows,
the resolution, the view and the count. The student then trains for any number of epochs on
augmented views of those images (flip and a mild random crop) against the whole-image logits: a
ViT's logits cost one forward pass per image, not one per step.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from build_models.context import BuildContext, TrainData
from build_models.sources.dataset import decode_pixels, split_hash
from build_models.training.loop import TrainConfig, TrainResult, train_classifier
from vitcore.manifest import sha256_of
from vitcore.preprocessing import PreprocessConfig

log = logging.getLogger(__name__)

TEACHER_VIEW = "center"  # the whole photo resized, as served; the student's flips and crops read the same logits


@dataclass(frozen=True)
class DistillConfig:
    """A student recipe, read from the profile's options (``distill_*`` keys)."""

    epochs: float = 5.0
    images: int | None = None  # a stratified sample of N train images (None: all); the teacher runs once on each
    resolution: int | None = None  # the student's input size (None: the base model's)
    lr: float = 2e-3
    batch_size: int = 64
    alpha: float = 0.5  # weight of the KL term against the hard labels
    temperature: float = 2.0
    crop_scale_min: float = 0.6  # mild crops: the teacher's logits are of the whole photo

    @classmethod
    def from_options(cls, options: Mapping[str, Any], prefix: str = "distill_") -> DistillConfig:
        """Looks up each field's key (``prefix`` + name), so a recording mapping sees exactly what is read."""
        chosen = {name: options[prefix + name] for name in cls.__dataclass_fields__ if prefix + name in options}
        return cls(**chosen)

    def train_config(self, seed: int, precision: str, steps_per_epoch: int) -> TrainConfig:
        return TrainConfig(minutes=None, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           warmup_steps=min(100, max(1, steps_per_epoch // 2)), label_smoothing=0.0,
                           crop_scale_min=self.crop_scale_min, color_jitter=0.1, distill_alpha=self.alpha,
                           distill_temperature=self.temperature, eval_every_steps=max(50, steps_per_epoch // 2),
                           seed=seed, precision=precision)


@functools.lru_cache(maxsize=8)
def file_sha256(path: Path) -> str:
    """``manifest.sha256_of``, once per file in a build (both students key the same teacher file)."""
    return sha256_of(path)


def teacher_cache_key(ctx: BuildContext, rows: np.ndarray) -> dict[str, Any]:
    """Everything the cached logits depend on."""
    return {"role": "teacher logits", "model_sha256": file_sha256(ctx.base_dir / "model.safetensors"),
            "train_rows": split_hash(ctx.data.ids, rows), "resolution": [ctx.preprocess.height, ctx.preprocess.width],
            "normalisation": [ctx.preprocess.image_mean, ctx.preprocess.image_std], "view": TEACHER_VIEW,
            "images": len(rows)}


@dataclass
class TeacherLogits:
    logits: np.ndarray  # [N, labels] float16, in train-row order
    key: dict[str, Any]
    minutes: float
    reused: bool
    precision: str | None  # None when reused: no model ran


def teacher_logits(ctx: BuildContext, pixels: np.ndarray, rows: np.ndarray) -> TeacherLogits:
    """The base model's logits on ``pixels`` (the train ``rows`` at its own size): from the cache when its key
    matches, else one OpenVINO pass over the images not yet done."""
    from build_models.training.partial import StateCache

    started = time.perf_counter()
    key = teacher_cache_key(ctx, rows)
    cache = StateCache(ctx.cache_dir / "teacher-logits", key, (len(rows), len(ctx.label_names)))
    reused = cache.done_rows() >= len(rows)
    precision = None
    if reused:
        logits = np.load(cache.path, mmap_mode="r")
        log.info("teacher logits reused from %s (key matches)", cache.path.name)
    else:
        compiled, precision = compiled_teacher(ctx)
        log_teacher_estimate(compiled, pixels, ctx.preprocess, len(rows) - cache.done_rows())
        logits = cache.fill(pixels, ctx.preprocess, compiled, chunk=32)
    return TeacherLogits(np.asarray(logits), key, (time.perf_counter() - started) / 60, reused, precision)


def log_teacher_estimate(compiled: Any, pixels: np.ndarray, preprocess: PreprocessConfig, remaining: int) -> float:
    """Time one batch of the compiled teacher; log (and return) the minutes its pass over ``remaining`` images
    should take."""
    from build_models.training.loop import to_model_input

    request = compiled.create_infer_request()
    batch = to_model_input(pixels[:8], preprocess).numpy()
    request.infer({0: batch})
    started = time.perf_counter()
    request.infer({0: batch})
    ms = (time.perf_counter() - started) * 1000 / len(batch)
    minutes = ms * remaining / 60_000
    log.info("teacher: one pass over %d images at %.1f ms/image, estimated %.1f min", remaining, ms, minutes)
    return minutes


def compiled_teacher(ctx: BuildContext) -> tuple[Any, str]:
    from transformers import AutoModelForImageClassification

    from build_models.export.formats import LogitsOf
    from build_models.training.partial import compile_openvino

    model = AutoModelForImageClassification.from_pretrained(str(ctx.base_dir)).eval()
    threads = ctx.threads.openvino_threads or ctx.threads.torch_intra_op or 0
    return compile_openvino(LogitsOf(model), model, "auto", threads, ctx.preprocess.height, "teacher")


@dataclass
class StudentData:
    train: TrainData
    teacher: TeacherLogits
    preprocess: PreprocessConfig


def student_data(ctx: BuildContext, config: DistillConfig, preprocess: PreprocessConfig) -> StudentData:
    """A stratified sample of ``config.images`` train images (``ctx.sample``) at the student's size with the
    teacher's logits for them, and the validation sample (``val_images`` option) at the student's size."""
    base_pixels, _, train_rows = ctx.sampled("train", config.images)
    teacher = teacher_logits(ctx, base_pixels, train_rows)
    pixels, kept = decode_pixels(ctx.data, train_rows, preprocess, ctx.cache_dir)
    if len(kept) != len(train_rows):
        raise RuntimeError("train photos decoded at the base size did not decode at the student's size")
    _, _, val_rows = ctx.sampled("val", ctx.options.get("val_images"))
    val_pixels, val_kept = decode_pixels(ctx.data, val_rows, preprocess, ctx.cache_dir)
    data = TrainData(pixels, ctx.data.labels[kept], val_pixels, ctx.data.labels[val_kept], preprocess,
                     teacher_logits=teacher.logits)
    return StudentData(data, teacher, preprocess)


def student_preprocess(ctx: BuildContext, config: DistillConfig, mean: tuple[float, float, float] | None = None,
                       std: tuple[float, float, float] | None = None) -> PreprocessConfig:
    size = config.resolution or ctx.preprocess.height
    return replace(ctx.preprocess, height=size, width=size, image_mean=mean or ctx.preprocess.image_mean,
                   image_std=std or ctx.preprocess.image_std)


def train_student(model: Any, ctx: BuildContext, config: DistillConfig, data: StudentData,
                  name: str) -> TrainResult:
    steps_per_epoch = max(1, len(data.train.train_labels) // config.batch_size)
    recipe = config.train_config(ctx.seed, ctx.precision, steps_per_epoch)
    log.info("%s: %d images at %d px, %.1f epochs = %d steps of %d", name, len(data.train.train_labels),
             data.preprocess.height, config.epochs, int(config.epochs * steps_per_epoch), config.batch_size)
    fingerprint = {"variant": name, "teacher": data.teacher.key, "student_size": data.preprocess.height}
    return train_classifier(model, data.train, recipe, ctx.work_dir, fingerprint, device=ctx.device)


def distillation_record(config: DistillConfig, data: StudentData, result: TrainResult, parameters: int,
                        teacher_parameters: int, init: str) -> dict[str, Any]:
    teacher = data.teacher
    return {"parameters": parameters, "teacher_parameters": teacher_parameters,
            "parameters_vs_teacher": round(parameters / teacher_parameters, 4), "init": init,
            "distillation": {"epochs": round(result.epochs, 2), "steps": result.steps, "images": len(teacher.logits),
                             "class_counts": np.bincount(data.train.train_labels).tolist(),  # a stratified sample
                             "val_images": len(data.train.val_labels),
                             "val_class_counts": np.bincount(data.train.val_labels).tolist(),
                             "resolution": data.preprocess.height, "minutes": round(result.minutes, 2),
                             "val_accuracy": result.best_val_accuracy, "precision": result.precision,
                             "temperature": config.temperature, "alpha": config.alpha, "lr": config.lr,
                             "crop_scale_min": config.crop_scale_min,
                             "teacher_passes_per_image": 0 if teacher.reused else 1,
                             "teacher_logits": {"minutes": round(teacher.minutes, 2), "reused": teacher.reused,
                                                "precision": teacher.precision, "view": TEACHER_VIEW,
                                                "key": {k: v for k, v in teacher.key.items() if k != "role"}}}}

