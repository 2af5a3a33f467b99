"""`transformers-pipeline`: transformers.pipeline("image-classification") over the plain model."""

from __future__ import annotations

from typing import Any

from build_models.context import BuildContext
from build_models.variants.plain import copy_base_checkpoint


def build(ctx: BuildContext) -> dict[str, Any]:
    copy_base_checkpoint(ctx)
    return {"parameters": ctx.base_parameter_count, "format": "safetensors fp32 (transformers pipeline)"}
