"""`openvino`: OpenVINO IR exported by optimum-intel, compiled and run by the OpenVINO runtime."""

from __future__ import annotations

from typing import Any

from build_models.context import BuildContext
from build_models.export.formats import export_openvino


def build(ctx: BuildContext) -> dict[str, Any]:
    export_openvino(ctx.base_dir, ctx.out_dir)
    return {"parameters": ctx.base_parameter_count, "format": "OpenVINO IR fp32"}
