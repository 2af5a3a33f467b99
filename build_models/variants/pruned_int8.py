"""`pruned-int8`: stacked compression, the structurally pruned ViT quantized to int8.

`pruned-structured-40` (40% of heads and MLP neurons removed, then refit by least squares) followed by
post-training int8 in the fastest runtime that agrees with the pruned fp32 model: ORT static,
ORT dynamic or OpenVINO NNCF. It measures what combining two methods buys over either alone.
"""

from __future__ import annotations

from typing import Any

from build_models.context import BuildContext, parameter_count
from build_models.export.int8_choice import build_fastest_int8
from vitcore.errors import BuildError

PRUNED = "pruned-structured-40"


def build(ctx: BuildContext) -> dict[str, Any]:
    pruned_dir = ctx.artifacts_root / PRUNED
    if not (pruned_dir / "config.json").exists():
        raise BuildError(f"{PRUNED} must be built first (python -m build_models --variants {PRUNED},pruned-int8)")
    facts = build_fastest_int8(ctx, pruned_dir)
    return {"parameters": parameter_count(pruned_dir), "stacked": [PRUNED, f"int8 ({facts['kept']})"],
            "format": f"int8 ({facts['kept']})", **facts}
