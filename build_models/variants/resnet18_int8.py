"""`resnet18-int8`: the distilled ResNet-18 student quantized to int8, in whichever runtime is faster.

Candidates: ONNX Runtime static QDQ U8S8 (reduce_range), ONNX Runtime dynamic U8, and OpenVINO
NNCF int8, all calibrated on the same train images; the fastest one that agrees with the fp32
student on validation images is kept, and the manifest records all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from build_models.context import BuildContext, parameter_count
from build_models.errors import BuildError
from build_models.exporters import ONNX_FILE, OPENVINO_XML, copy_model_metadata, export_onnx, export_openvino
from build_models.int8 import CALIBRATION_IMAGES, Candidate, nncf_int8
from build_models.predictor import Predictor
from build_models.registry import VariantSpec, register_variant
from build_models.threads import ThreadSettings
from build_models.variants.onnx import OnnxSessionPredictor
from build_models.variants.onnx_int8 import build_int8_from_onnx, quantize_onnx_candidates
from build_models.variants.openvino import OpenVinoPredictor

STUDENT = "distilled-resnet18"


def build(ctx: BuildContext) -> dict[str, Any]:
    student_dir = ctx.artifacts_root / STUDENT
    if not (student_dir / "config.json").exists():
        raise BuildError(f"{STUDENT} must be built first (python -m build_models --variants {STUDENT},resnet18-int8)")
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    fp32_onnx = export_onnx(student_dir, ctx.work_dir / "fp32")
    fp32_xml = export_openvino(student_dir, ctx.work_dir / "fp32_ov")
    candidates = quantize_onnx_candidates(ctx, fp32_onnx)
    calibration = ctx.calibration_batch(CALIBRATION_IMAGES)
    candidates.append(Candidate("openvino-nncf", nncf_int8(fp32_xml, ctx.work_dir / "nncf" / OPENVINO_XML,
                                                           calibration), "openvino"))
    facts = build_int8_from_onnx(ctx, fp32_onnx, candidates)
    copy_model_metadata(student_dir, ctx.out_dir)
    return {"parameters": parameter_count(student_dir), "teacher_parameters": ctx.base_parameter_count,
            "format": f"int8 ({facts['kept']})", **facts}


class AnyRuntimeInt8Predictor(Predictor):
    """Runs the kept candidate: model.onnx in ONNX Runtime, or openvino_model.xml in OpenVINO."""

    def __init__(self, artifact_dir: Path, threads: ThreadSettings | None = None) -> None:
        super().__init__(artifact_dir, threads)
        onnx = (Path(artifact_dir) / ONNX_FILE).exists()
        self.runtime = "onnxruntime" if onnx else "openvino"
        self.inner: Predictor = (OnnxSessionPredictor if onnx else OpenVinoPredictor)(artifact_dir, threads)

    def _load(self) -> None:
        self.inner.load()

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.inner.forward(batch)


register_variant(VariantSpec(
    name="resnet18-int8",
    runtime="onnxruntime",
    summary="The distilled ResNet-18 in int8: ORT static/dynamic or OpenVINO NNCF, the fastest agreeing one.",
    build=build,
    predictor=AnyRuntimeInt8Predictor,
    requires=("onnxruntime", "openvino", "nncf", "optimum.exporters.onnx", "optimum.intel"),
    depends_on=(STUDENT,),
    order=95,
))
