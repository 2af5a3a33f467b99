"""`openvino-int8`: NNCF post-training int8 quantization of the OpenVINO model, calibrated on train images."""

from __future__ import annotations

from typing import Any

from build_models.context import BuildContext
from build_models.export.formats import copy_model_metadata, export_openvino
from build_models.export.int8 import CALIBRATION_IMAGES, nncf_int8
from vitcore.backends.openvino import OPENVINO_XML


def build(ctx: BuildContext) -> dict[str, Any]:
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    fp32_xml = export_openvino(ctx.base_dir, ctx.work_dir / "fp32")
    nncf_int8(fp32_xml, ctx.out_dir / OPENVINO_XML, ctx.calibration_batch(CALIBRATION_IMAGES))
    copy_model_metadata(ctx.base_dir, ctx.out_dir)
    return {"parameters": ctx.base_parameter_count, "format": "OpenVINO IR, NNCF int8 (transformer preset)",
            "calibration_images": CALIBRATION_IMAGES}
