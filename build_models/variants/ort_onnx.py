"""`ort-onnx`: optimum.onnxruntime.ORTModelForImageClassification on the exported ONNX model."""

from __future__ import annotations

from typing import Any

from build_models.context import BuildContext
from build_models.export.formats import export_onnx


def build(ctx: BuildContext) -> dict[str, Any]:
    export_onnx(ctx.base_dir, ctx.out_dir)
    return {"parameters": ctx.base_parameter_count, "format": "ONNX fp32 (optimum ORTModel)"}
