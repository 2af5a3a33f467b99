"""`distilled-resnet18`: a ResNet-18 student distilled from the plain ViT teacher.

transformers ResNetForImageClassification with the microsoft/resnet-18 architecture. Its
starting weights: the ``resnet18_base`` option (a hub id or a local ``save_pretrained`` folder,
``--student-base`` on the command line), else microsoft/resnet-18 from the hub when it answers,
else random init. The ViT's logits are computed once per train image and cached
(``build_models.training.distill``); the student trains on flips and mild crops of those images at its own
resolution (``distill_resolution``). Loss: KL to the ViT's soft targets at a temperature, plus
cross-entropy on the hard labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from build_models.context import BuildContext
from build_models.sources.base_model import label_maps
from build_models.sources.hub import hub_reachable
from build_models.training.distill import (
    DistillConfig,
    distillation_record,
    student_data,
    student_preprocess,
    train_student,
)
from vitcore.errors import BaseModelError

HUB_ID = "microsoft/resnet-18"
RESNET18 = dict(embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2], layer_type="basic",
                hidden_act="relu", downsample_in_first_stage=False)


def student(label_names: list[str], seed: int, base: str | None) -> tuple[Any, str]:
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    if base is None and hub_reachable():
        base = HUB_ID
    if base is not None:
        if base.startswith((".", "/", "~")) and not Path(base).is_dir():
            raise BaseModelError(f"ResNet-18 base folder {base!r} does not exist")
        model = ResNetForImageClassification.from_pretrained(base, ignore_mismatched_sizes=True,
                                                             **label_maps(label_names))
        origin = "local checkpoint" if Path(base).is_dir() else "hub"
        return model, f"{base} ({origin} weights, head replaced)"
    torch.manual_seed(seed)
    return ResNetForImageClassification(ResNetConfig(**RESNET18, **label_maps(label_names))), "random init"


def build(ctx: BuildContext) -> dict[str, Any]:
    ctx.threads.apply_torch()
    config = DistillConfig.from_options(ctx.options)
    preprocess = student_preprocess(ctx, config)
    data = student_data(ctx, config, preprocess)
    model, init = student(ctx.label_names, ctx.seed, ctx.options.get("resnet18_base"))
    result = train_student(model, ctx, config, data, "distilled-resnet18")
    model.save_pretrained(str(ctx.out_dir), safe_serialization=True)
    preprocess.save(ctx.out_dir)
    parameters = sum(p.numel() for p in model.parameters())
    return distillation_record(config, data, result, parameters, ctx.base_parameter_count, init)
