"""`plain`: the base ViT as is, PyTorch fp32 eager."""

from __future__ import annotations

import shutil
from typing import Any

from build_models.context import BuildContext


def copy_base_checkpoint(ctx: BuildContext) -> None:
    """The base model's safetensors, config and preprocessor config, unchanged."""
    for path in ctx.base_dir.iterdir():
        if path.suffix in (".json", ".safetensors") and path.name != "build_info.json":
            shutil.copy2(path, ctx.out_dir / path.name)


def build(ctx: BuildContext) -> dict[str, Any]:
    copy_base_checkpoint(ctx)
    return {"parameters": ctx.base_parameter_count, "format": "safetensors fp32"}
