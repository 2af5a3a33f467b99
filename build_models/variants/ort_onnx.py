"""`ort-onnx`: optimum.onnxruntime.ORTModelForImageClassification on the exported ONNX model."""

from __future__ import annotations

from typing import Any

import numpy as np

from build_models.context import BuildContext
from build_models.exporters import export_onnx, ort_applied_settings, ort_session_options
from build_models.predictor import Predictor
from build_models.registry import VariantSpec, register_variant


def build(ctx: BuildContext) -> dict[str, Any]:
    export_onnx(ctx.base_dir, ctx.out_dir)
    return {"parameters": ctx.base_parameter_count, "format": "ONNX fp32 (optimum ORTModel)"}


class OrtModelPredictor(Predictor):
    def _load(self) -> None:
        from optimum.onnxruntime import ORTModelForImageClassification

        threads = self.threads.resolved()
        self.model = ORTModelForImageClassification.from_pretrained(
            str(self.artifact_dir), provider="CPUExecutionProvider",
            session_options=ort_session_options(threads.ort_intra_op, threads.ort_inter_op),
        )

    def applied_settings(self) -> dict[str, Any]:
        return ort_applied_settings(self.model.session if hasattr(self.model, "session") else self.model.model)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(pixel_values=np.ascontiguousarray(batch, dtype=np.float32)).logits)


register_variant(VariantSpec(
    name="ort-onnx",
    runtime="onnxruntime",
    summary="optimum ORTModelForImageClassification on the exported ONNX model.",
    build=build,
    predictor=OrtModelPredictor,
    requires=("onnxruntime", "optimum.onnxruntime"),
    lossless=True,
    order=50,
))
