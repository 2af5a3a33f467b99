"""`optimum-pipeline`: optimum's image-classification pipeline on the ONNX Runtime backend."""

from __future__ import annotations

from typing import Any

from build_models.context import BuildContext
from build_models.exporters import export_onnx
from build_models.registry import VariantSpec, register_variant
from build_models.variants.ort_onnx import OrtModelPredictor
from build_models.variants.transformers_pipeline import PipelinePredictions


def build(ctx: BuildContext) -> dict[str, Any]:
    export_onnx(ctx.base_dir, ctx.out_dir)
    return {"parameters": ctx.base_parameter_count, "format": "ONNX fp32 (optimum pipeline, accelerator=ort)"}


class OptimumPipelinePredictor(PipelinePredictions, OrtModelPredictor):
    def _load(self) -> None:
        from optimum.pipelines import pipeline

        super()._load()
        self.pipe = pipeline("image-classification", model=self.model, image_processor=str(self.artifact_dir),
                             accelerator="ort")


register_variant(VariantSpec(
    name="optimum-pipeline",
    runtime="onnxruntime",
    summary="optimum.pipelines.pipeline('image-classification', accelerator='ort') on the ONNX model.",
    build=build,
    predictor=OptimumPipelinePredictor,
    requires=("onnxruntime", "optimum.pipelines", "optimum.onnxruntime"),
    lossless=True,
    order=45,
))
