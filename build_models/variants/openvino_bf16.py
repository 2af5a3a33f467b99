"""`openvino-bf16`: the OpenVINO IR (fp32 weights) run with bf16 inference precision.

bf16 pays where the CPU multiplies in it (AVX512_BF16, AMX); on AVX2 alone OpenVINO falls back to f32, so the row
would repeat `openvino`. The build records which it is, and the report says so in the row.
"""

from __future__ import annotations

from typing import Any

from build_models.context import BuildContext
from build_models.export.formats import export_openvino
from build_models.measure.peak import BF16_FLAGS, bf16_unavailable
from vitcore.hardware import cpu_facts


def build(ctx: BuildContext) -> dict[str, Any]:
    export_openvino(ctx.base_dir, ctx.out_dir)
    flags = set(cpu_facts()["flags"])
    reason = bf16_unavailable(flags)
    facts: dict[str, Any] = {"parameters": ctx.base_parameter_count, "format": "OpenVINO IR fp32, bf16 inference",
                             "bf16": {"applicable": reason is None,
                                      "cpu_flags": sorted(flag for flag in flags if flag in BF16_FLAGS)}}
    if reason:
        facts["precision_note"] = f"bf16 {reason} (on the CPU that built it)"
    return facts
