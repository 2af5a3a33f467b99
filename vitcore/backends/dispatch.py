"""A predictor for artifacts whose runtime the build chose: ONNX Runtime or OpenVINO, by the file present."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vitcore.backends.base import Predictor
from vitcore.backends.onnxruntime import ONNX_FILE, OnnxSessionPredictor
from vitcore.backends.openvino import OpenVinoPredictor
from vitcore.threads import ThreadSettings


class AnyRuntimeInt8Predictor(Predictor):
    """Runs the kept candidate: model.onnx in ONNX Runtime, or openvino_model.xml in OpenVINO."""

    def __init__(self, artifact_dir: Path, threads: ThreadSettings | None = None, device: str = "cpu") -> None:
        super().__init__(artifact_dir, threads, device)
        onnx = (Path(artifact_dir) / ONNX_FILE).exists()
        self.runtime = "onnxruntime" if onnx else "openvino"
        self.inner: Predictor = (OnnxSessionPredictor if onnx else OpenVinoPredictor)(artifact_dir, threads)

    def _load(self) -> None:
        self.inner.load()

    def applied_settings(self) -> dict[str, Any]:
        return {"runtime": self.runtime, **self.inner.applied_settings()}

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.inner.forward(batch)
