"""Pipeline backends: transformers' and optimum's image-classification pipelines, their own preprocessing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from vitcore.backends.onnxruntime import OrtModelPredictor
from vitcore.backends.pytorch import TorchPredictor


def pipeline_probabilities(pipe: Any, images: Sequence[Image.Image]) -> np.ndarray:
    """Run an image-classification pipeline and order its scores by the model's label index."""
    config = pipe.model.config
    label_names = [config.id2label[i] for i in range(config.num_labels)]
    outputs = pipe(list(images), top_k=len(label_names), function_to_apply="softmax")
    if outputs and isinstance(outputs[0], dict):
        outputs = [outputs]
    index = {name: i for i, name in enumerate(label_names)}
    probabilities = np.zeros((len(outputs), len(label_names)), dtype=np.float32)
    for row, scores in enumerate(outputs):
        for item in scores:
            probabilities[row, index[item["label"]]] = item["score"]
    return probabilities


class PipelinePredictions:
    """``predict_images`` through ``self.pipe``, with the pipeline's own preprocessing."""

    pipe: Any
    forward: Callable[[np.ndarray], np.ndarray]

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return pipeline_probabilities(self.pipe, images)

    def prepare(self, image: Image.Image) -> Image.Image | np.ndarray:
        """The image itself: the pipeline preprocesses it."""
        return image

    def predict_logits(self, inputs: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """Images go through the pipeline, which gives scores only: their logits are log-probabilities
        (softmax gives the pipeline's scores back). Preprocessed arrays go through ``forward``."""
        logits = np.zeros((len(inputs), len(self.pipe.model.config.id2label)), dtype=np.float32)
        images = [i for i, item in enumerate(inputs) if isinstance(item, Image.Image)]
        arrays = [i for i, item in enumerate(inputs) if not isinstance(item, Image.Image)]
        if images:
            scores = pipeline_probabilities(self.pipe, [inputs[i] for i in images])  # type: ignore[misc]
            logits[images] = np.log(np.maximum(scores, np.finfo(np.float32).tiny))
        if arrays:
            logits[arrays] = self.forward(np.stack([np.asarray(inputs[i], dtype=np.float32) for i in arrays]))
        return logits


class TransformersPipelinePredictor(PipelinePredictions, TorchPredictor):
    """Predictions go through the pipeline; ``forward`` (benchmarks) is the wrapped model."""

    def _load(self) -> None:
        from transformers import pipeline

        super()._load()
        self.pipe = pipeline("image-classification", model=self.model, image_processor=str(self.artifact_dir),
                             framework="pt", device="cpu")


class OptimumPipelinePredictor(PipelinePredictions, OrtModelPredictor):
    def _load(self) -> None:
        from optimum.pipelines import pipeline

        super()._load()
        self.pipe = pipeline("image-classification", model=self.model, image_processor=str(self.artifact_dir),
                             accelerator="ort")
