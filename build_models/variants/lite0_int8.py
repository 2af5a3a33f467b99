"""`lite0-int8`: the distilled EfficientNet-Lite0 student in int8, in whichever runtime is faster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from build_models.context import BuildContext
from build_models.export.formats import copy_model_metadata, export_module_onnx, onnx_to_openvino
from build_models.export.int8_choice import build_fastest_int8
from vitcore.backends.onnxruntime import ONNX_FILE
from vitcore.backends.pytorch import LITE0_WEIGHTS, Lite0Predictor
from vitcore.errors import BuildError

STUDENT = "distilled-lite0"


def export_lite0(ctx: BuildContext, student_dir: Path) -> tuple[Path, Path, str]:
    """fp32 ONNX (``torch.onnx.export``; optimum exports transformers models only) and its OpenVINO IR."""
    predictor = Lite0Predictor(student_dir)
    predictor.load()
    size = predictor.preprocess_config
    out_dir = ctx.work_dir / "fp32"
    export_module_onnx(predictor.model, size.height, size.width, out_dir / ONNX_FILE)
    copy_model_metadata(student_dir, out_dir)
    return out_dir / ONNX_FILE, onnx_to_openvino(out_dir / ONNX_FILE, ctx.work_dir / "fp32_ov"), "torch.onnx.export"


def build(ctx: BuildContext) -> dict[str, Any]:
    student_dir = ctx.artifacts_root / STUDENT
    if not (student_dir / LITE0_WEIGHTS).exists():
        raise BuildError(f"{STUDENT} must be built first (python -m build_models --variants {STUDENT},lite0-int8)")
    facts = build_fastest_int8(ctx, student_dir, export=export_lite0, transformer=False)
    parameters = sum(t.numel() for t in Lite0Predictor.state(student_dir).values())
    return {"parameters": parameters, "teacher_parameters": ctx.base_parameter_count,
            "format": f"int8 ({facts['kept']})", **facts}
