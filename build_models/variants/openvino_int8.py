"""`openvino-int8`: NNCF post-training int8 quantization of the OpenVINO model, calibrated on train images."""

from __future__ import annotations

from typing import Any

from build_models.context import BuildContext
from build_models.exporters import OPENVINO_XML, copy_model_metadata, export_openvino
from build_models.int8 import CALIBRATION_IMAGES, nncf_int8
from build_models.registry import VariantSpec, register_variant
from build_models.variants.openvino import OpenVinoPredictor


def build(ctx: BuildContext) -> dict[str, Any]:
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    fp32_xml = export_openvino(ctx.base_dir, ctx.work_dir / "fp32")
    nncf_int8(fp32_xml, ctx.out_dir / OPENVINO_XML, ctx.calibration_batch(CALIBRATION_IMAGES))
    copy_model_metadata(ctx.base_dir, ctx.out_dir)
    return {"parameters": ctx.base_parameter_count, "format": "OpenVINO IR, NNCF int8 (transformer preset)",
            "calibration_images": CALIBRATION_IMAGES}


register_variant(VariantSpec(
    name="openvino-int8",
    runtime="openvino",
    summary="NNCF post-training int8 quantization of the OpenVINO model (ModelType.TRANSFORMER).",
    build=build,
    predictor=OpenVinoPredictor,
    requires=("openvino",),
    build_requires=("nncf", "optimum.intel"),
    order=75,
))
