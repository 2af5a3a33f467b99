"""What a variant builder gets: the base model, the data it may calibrate or train on, its folder."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from build_models.sources.dataset import LabelledImages, Splits, decode_pixels, sample_positions, take
from vitcore.preprocessing import PreprocessConfig, normalize_uint8
from vitcore.threads import ThreadSettings

if TYPE_CHECKING:
    from build_models.training.loop import Logits
    from build_models.training.teacher import DistillTargets

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    train_pixels: np.ndarray
    train_labels: np.ndarray
    val_pixels: np.ndarray
    val_labels: np.ndarray
    preprocess: PreprocessConfig
    teacher: Logits | None = None  # online distillation: called on each augmented batch, under no_grad
    targets: DistillTargets | None = None  # cached distillation: teacher outputs per (view, train image)
    teacher_logits: np.ndarray | None = None  # cached distillation: the teacher's logits per train image [N, labels]


@dataclass
class BuildContext:
    base_dir: Path  # the base model: a save_pretrained folder (safetensors + preprocessor config)
    out_dir: Path  # the variant's own folder under artifacts/
    work_dir: Path  # scratch space for resumable work (artifacts/.work/<variant>)
    label_names: list[str]
    preprocess: PreprocessConfig
    threads: ThreadSettings
    options: Mapping[str, Any]  # recorded as read: see build_keys.RecordedOptions
    data: LabelledImages
    splits: Splits
    cache_dir: Path
    seed: int = 0
    device: str = "cpu"  # torch device for variants that train (distillation, pruning recovery)
    precision: str = "auto"  # their training precision (training.training_precision)
    pixel_cache: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    row_cache: dict[str, np.ndarray] = field(default_factory=dict)
    progress: Callable[[str], None] = log.info

    def pixels(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """uint8 NHWC pixels and labels of ``split`` ("train" / "val") at the base model's size."""
        if split not in self.pixel_cache or split not in self.row_cache:
            rows = self.splits.as_dict()[split]
            pixels, kept = decode_pixels(self.data, rows, self.preprocess, self.cache_dir)
            self.pixel_cache[split] = (pixels, self.data.labels[kept])
            self.row_cache[split] = kept
        return self.pixel_cache[split]

    def rows(self, split: str) -> np.ndarray:
        """The dataset rows behind ``pixels(split)`` (those that decode)."""
        self.pixels(split)
        return self.row_cache[split]

    def sample(self, split: str, count: int | None) -> np.ndarray:
        """Positions in ``pixels(split)`` of a seeded stratified sample of ``count`` of its images (each label's
        share of the split, drawn with the build's seed, in split order); all of them for None. Never the first
        rows: a split is in dataset order, and a dataset may be ordered by label."""
        return sample_positions(self.pixels(split)[1], count, self.seed)

    def sampled(self, split: str, count: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixels, labels and dataset rows of ``sample(split, count)`` (the arrays themselves, uncopied, for all)."""
        pixels, labels = self.pixels(split)
        chosen = self.sample(split, count)
        return take(pixels, chosen), take(labels, chosen), take(self.rows(split), chosen)

    def train_data(self) -> TrainData:
        """Train and validation pixels; the ``val_images`` option keeps a stratified sample of N validation images
        (a 224 px ViT-S needs minutes for the whole validation split, which a short recovery run would spend on
        one check)."""
        train_pixels, train_labels = self.pixels("train")
        val_pixels, val_labels, _ = self.sampled("val", self.options.get("val_images"))
        return TrainData(train_pixels, train_labels, val_pixels, val_labels, self.preprocess)

    def calibration_batch(self, count: int, preprocess: PreprocessConfig | None = None) -> np.ndarray:
        """A fixed stratified sample of ``count`` train images as a normalised NCHW float32 batch (for
        ``preprocess``: a student's own size and normalisation; default the base model's)."""
        return self._batch("train", self.sample("train", count), preprocess)

    def validation_batch(self, count: int, preprocess: PreprocessConfig | None = None) -> np.ndarray:
        """A fixed stratified sample of ``count`` validation images as a normalised NCHW float32 batch."""
        return self._batch("val", self.sample("val", count), preprocess)

    def _batch(self, split: str, indices: np.ndarray, preprocess: PreprocessConfig | None) -> np.ndarray:
        if preprocess is None or preprocess == self.preprocess:
            return normalize_uint8(self.pixels(split)[0][indices], self.preprocess)
        pixels, _ = decode_pixels(self.data, self.rows(split)[indices], preprocess, self.cache_dir)
        return normalize_uint8(pixels, preprocess)

    @property
    def artifacts_root(self) -> Path:
        return self.out_dir.parent

    @functools.cached_property
    def base_parameter_count(self) -> int:
        return parameter_count(self.base_dir)


def parameter_count(model_dir: Path) -> int:
    """Parameters of a save_pretrained classifier, counted on the meta device (no weights loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageClassification

    config = AutoConfig.from_pretrained(str(model_dir))
    try:
        with torch.device("meta"):
            model = AutoModelForImageClassification.from_config(config)
    except NotImplementedError:  # a ViT with pruned heads runs torch.nonzero while it is built: not on meta
        model = AutoModelForImageClassification.from_config(config)
    return sum(p.numel() for p in model.parameters())
