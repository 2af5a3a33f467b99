"""`onnx-int8`: ONNX Runtime int8, static QDQ calibrated on train images, or dynamic if that is better.

This CPU has AVX2 without VNNI, where the ONNX Runtime docs advise U8S8 with ``reduce_range`` (or
U8U8) to avoid saturation. Both a static U8S8 QDQ model (per-channel weights, reduce_range,
MinMax calibration on train images) and a dynamic U8 model are built; the one that agrees with
the fp32 model on validation images (within half a point of the best) and runs fastest is kept,
and the manifest records every candidate's agreement and latency.
"""

from __future__ import annotations

from typing import Any

from build_models.context import BuildContext
from build_models.exporters import ONNX_FILE, copy_model_metadata, export_onnx
from build_models.int8 import (
    CALIBRATION_IMAGES,
    CHOICE_IMAGES,
    Candidate,
    choose,
    install,
    ort_dynamic_int8,
    ort_static_int8,
    runner,
    score_candidates,
)
from build_models.registry import VariantSpec, register_variant
from build_models.variants.onnx import OnnxSessionPredictor


def quantize_onnx_candidates(ctx: BuildContext, fp32_onnx: Any) -> list[Candidate]:
    calibration = ctx.calibration_batch(CALIBRATION_IMAGES)
    work = ctx.work_dir
    return [
        Candidate("static-qdq-u8s8-reduce-range",
                  ort_static_int8(fp32_onnx, work / "static_u8s8.onnx", calibration, "u8", reduce_range=True),
                  "onnxruntime"),
        Candidate("dynamic-u8", ort_dynamic_int8(fp32_onnx, work / "dynamic_u8.onnx"), "onnxruntime"),
    ]


def build_int8_from_onnx(ctx: BuildContext, fp32_onnx: Any, candidates: list[Candidate]) -> dict[str, Any]:
    threads = ctx.threads.resolved().ort_intra_op
    reference = runner(Candidate("fp32", fp32_onnx, "onnxruntime"), threads)
    choice_images = int(ctx.options.get("int8_choice_images", CHOICE_IMAGES))
    score_candidates(candidates, reference, ctx.validation_batch(choice_images), threads)
    kept = choose(candidates)
    install(kept, ctx.out_dir, ONNX_FILE if kept.runtime == "onnxruntime" else "openvino_model.xml")
    return {"kept": kept.name, "runtime": kept.runtime, "candidates": {c.name: c.facts() for c in candidates},
            "calibration_images": CALIBRATION_IMAGES, "choice_images": choice_images}


def build(ctx: BuildContext) -> dict[str, Any]:
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    fp32_onnx = export_onnx(ctx.base_dir, ctx.work_dir / "fp32")
    facts = build_int8_from_onnx(ctx, fp32_onnx, quantize_onnx_candidates(ctx, fp32_onnx))
    copy_model_metadata(ctx.base_dir, ctx.out_dir)
    return {"parameters": ctx.base_parameter_count, "format": f"ONNX int8 ({facts['kept']})", **facts}


register_variant(VariantSpec(
    name="onnx-int8",
    runtime="onnxruntime",
    summary="ONNX Runtime int8: static QDQ U8S8 (reduce_range) vs dynamic U8, the better one kept.",
    build=build,
    predictor=OnnxSessionPredictor,
    requires=("onnxruntime", "optimum.exporters.onnx"),
    order=65,
))
