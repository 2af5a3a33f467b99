"""`resnet18-int8`: the distilled ResNet-18 student quantized to int8, in whichever runtime is faster."""

from __future__ import annotations

from typing import Any

from build_models.context import BuildContext, parameter_count
from build_models.export.int8_choice import build_fastest_int8
from vitcore.errors import BuildError

STUDENT = "distilled-resnet18"


def build(ctx: BuildContext) -> dict[str, Any]:
    student_dir = ctx.artifacts_root / STUDENT
    if not (student_dir / "config.json").exists():
        raise BuildError(f"{STUDENT} must be built first (python -m build_models --variants {STUDENT},resnet18-int8)")
    facts = build_fastest_int8(ctx, student_dir, transformer=False)
    return {"parameters": parameter_count(student_dir), "teacher_parameters": ctx.base_parameter_count,
            "format": f"int8 ({facts['kept']})", **facts}
