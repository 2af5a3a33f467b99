"""Score any Predictor on the recorded test split, through the same code the service runs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from build_models.measure.scores import classification_metrics
from build_models.sources.dataset import LabelledImages, sample_positions
from vitcore.backends.base import Predictor
from vitcore.preprocessing import PreprocessConfig, decode_image, normalize_uint8, resize_to_uint8, softmax, to_rgb


@dataclass
class TestImages:
    ids: list[str]
    labels: np.ndarray
    images: list[Image.Image]
    _resized: dict[PreprocessConfig, np.ndarray] = field(default_factory=dict, repr=False)

    def resized(self, config: PreprocessConfig) -> np.ndarray:
        """Every image resized to uint8 HWC for ``config``, once per config: the shared preprocessing's costly
        half, reused by every variant that preprocesses the shared way."""
        if config not in self._resized:
            self._resized[config] = np.stack([resize_to_uint8(to_rgb(image), config) for image in self.images])
        return self._resized[config]

    @classmethod
    def decode(cls, data: LabelledImages, rows: np.ndarray) -> TestImages:
        progress = tqdm(rows, desc="decode test", leave=False, mininterval=2.0)
        images = [decode_image(data.image_bytes(int(r))) for r in progress]
        return cls([data.ids[int(r)] for r in rows], data.labels[rows], images)

    def sample(self, count: int | None, seed: int) -> TestImages:
        """A seeded stratified sample of ``count`` of these images, in their order (all of them for None);
        never the first ``count``: the test split is in dataset order, and a dataset may be ordered by label."""
        chosen = sample_positions(self.labels, count, seed)
        if len(chosen) == len(self.ids):
            return self
        return TestImages([self.ids[i] for i in chosen], self.labels[chosen], [self.images[i] for i in chosen],
                          {config: pixels[chosen] for config, pixels in self._resized.items()})

    def set_id(self) -> str:
        """Names this set of images: the sha256 of their ids in order (first 16 hex digits)."""
        return hashlib.sha256("\n".join(self.ids).encode()).hexdigest()[:16]


def uses_shared_preprocessing(predictor: Predictor) -> bool:
    """True unless the variant brings its own preprocessing (the pipelines)."""
    kind = type(predictor)
    return kind.predict_images is Predictor.predict_images and kind.preprocess is Predictor.preprocess


def predict_all(predictor: Predictor, images: Sequence[Image.Image], batch_size: int = 1,
                resized: np.ndarray | None = None) -> np.ndarray:
    """Batch 1 by default, as the service runs: dynamic int8 quantizes activations per batch. ``resized``
    (the images already resized for this predictor's config) skips the resize; the numbers are the same."""
    chunks = []
    for start in tqdm(range(0, len(images), batch_size), desc="evaluate", leave=False, mininterval=2.0):
        if resized is not None:
            batch = normalize_uint8(resized[start : start + batch_size], predictor.preprocess_config)
            chunks.append(softmax(predictor.predict_logits(list(batch))))
        else:
            chunks.append(predictor.predict_images(images[start : start + batch_size]))
    return np.concatenate(chunks)


def evaluate(predictor: Predictor, test: TestImages, label_names: list[str]) -> tuple[dict[str, Any], np.ndarray]:
    shared = uses_shared_preprocessing(predictor)
    probabilities = predict_all(predictor, test.images,
                                resized=test.resized(predictor.preprocess_config) if shared else None)
    metrics = classification_metrics(test.labels, probabilities.argmax(-1), label_names)
    return metrics, probabilities


def write_predictions(path: Path, ids: list[str], probabilities: np.ndarray) -> None:
    """Per-image test probabilities, so any later run can be checked against the build-time evaluation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ids": ids, "probabilities": np.round(probabilities, 7).tolist()}))


def read_predictions(path: Path) -> tuple[list[str], np.ndarray]:
    raw = json.loads(Path(path).read_text())
    return raw["ids"], np.asarray(raw["probabilities"], dtype=np.float32)
