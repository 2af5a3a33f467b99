"""The one interface every variant is served and evaluated through."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vitcore.preprocessing import PreprocessConfig, preprocess, softmax
from vitcore.threads import ThreadSettings


class Predictor(ABC):
    """A cheap constructor, ``load()`` for the heavy work and imports, ``forward(batch) -> logits``.

    ``forward`` takes an NCHW float32 batch made by the shared preprocessing and returns
    ``[N, num_labels]`` logits. ``predict_images`` is what the service and the evaluation call;
    variants with their own preprocessing (the pipelines) override it.
    """

    def __init__(self, artifact_dir: Path, threads: ThreadSettings | None = None, device: str = "cpu") -> None:
        self.artifact_dir = Path(artifact_dir)
        self.threads = threads or ThreadSettings()
        self.device = device  # torch predictors only; the other runtimes run on the CPU
        self.preprocess_config = PreprocessConfig.from_dir(self.artifact_dir)
        self.loaded = False

    def load(self) -> None:
        if not self.loaded:
            self._load()
            self.loaded = True

    @abstractmethod
    def _load(self) -> None:
        """Import the runtime and load the artifact."""

    @abstractmethod
    def forward(self, batch: np.ndarray) -> np.ndarray:
        """NCHW float32 -> logits [N, num_labels]."""

    def applied_settings(self) -> dict[str, Any]:
        """The runtime's settings as read back from the runtime after ``load()`` (not as requested)."""
        return {}

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray:
        return preprocess(images, self.preprocess_config)

    def prepare(self, image: Image.Image) -> Image.Image | np.ndarray:
        """One decoded image -> what ``predict_logits`` takes, done per request before batching: the shared
        preprocessing's CHW float32 array (elementwise, so the same as preprocessing it within a batch)."""
        return self.preprocess([image])[0]

    def predict_logits(self, inputs: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """Logits [N, num_labels] for RGB images (shared preprocessing) and/or preprocessed CHW float32 arrays."""
        if all(isinstance(item, Image.Image) for item in inputs):
            batch = self.preprocess(inputs)  # type: ignore[arg-type]
        else:
            batch = np.stack([item if isinstance(item, np.ndarray) else self.preprocess([item])[0]
                              for item in inputs]).astype(np.float32, copy=False)
        return np.asarray(self.forward(batch), dtype=np.float32)

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB images -> class probabilities [N, num_labels]."""
        return softmax(self.predict_logits(images))


