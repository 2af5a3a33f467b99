"""`onnx-int8`: ONNX Runtime int8, static QDQ calibrated on train images, or dynamic (per tensor or per
channel) if that is better.

On CPUs without VNNI (AVX2 only) the ONNX Runtime docs advise U8S8 with ``reduce_range`` (or
U8U8) to avoid saturation, and the same model runs everywhere. A static U8S8 QDQ model
(per-channel weights, reduce_range, MinMax calibration on train images) and dynamic U8
models (per-tensor and per-channel weight scales) are built; the one that agrees with the fp32
model on validation images (within half a point of the best) and runs fastest on the build
machine is kept, and the manifest records every candidate's agreement and latency together with
the CPU's ISA features.
"""

from __future__ import annotations

from typing import Any

from build_models.context import BuildContext
from build_models.export.formats import copy_model_metadata, export_onnx
from build_models.export.int8_choice import build_int8_from_onnx, quantize_onnx_candidates


def build(ctx: BuildContext) -> dict[str, Any]:
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    fp32_onnx = export_onnx(ctx.base_dir, ctx.work_dir / "fp32")
    facts = build_int8_from_onnx(ctx, fp32_onnx, quantize_onnx_candidates(ctx, fp32_onnx))
    copy_model_metadata(ctx.base_dir, ctx.out_dir)
    return {"parameters": ctx.base_parameter_count, "format": f"ONNX int8 ({facts['kept']})", **facts}
