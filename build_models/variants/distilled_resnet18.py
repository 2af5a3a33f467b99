"""`distilled-resnet18`: a ResNet-18 student distilled from the plain ViT teacher.

transformers ResNetForImageClassification with the microsoft/resnet-18 architecture. Its
starting weights: the ``resnet18_base`` option (a hub id or a local ``save_pretrained`` folder,
``--student-base`` on the command line), else microsoft/resnet-18 from the hub when it answers,
else random init. Loss: KL to the ViT's soft targets at a temperature, plus cross-entropy on
the hard labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from build_models.base_model import label_maps
from build_models.context import BuildContext
from build_models.errors import BaseModelError
from build_models.hub import hub_reachable
from build_models.predictor import TorchPredictor
from build_models.registry import VariantSpec, register_variant
from build_models.training import TrainConfig, train_classifier

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
    from transformers import AutoModelForImageClassification

    ctx.threads.apply_torch()
    teacher = AutoModelForImageClassification.from_pretrained(str(ctx.base_dir)).to(ctx.device).eval()
    model, init = student(ctx.label_names, ctx.seed, ctx.options.get("resnet18_base"))
    epochs = float(ctx.options.get("distill_epochs", 5.0))
    data = ctx.train_data()
    data.teacher = lambda x: teacher(pixel_values=x).logits
    recipe = TrainConfig(minutes=None, epochs=epochs, batch_size=64, lr=2e-3, warmup_steps=100, label_smoothing=0.0,
                         distill_alpha=0.5, distill_temperature=2.0, eval_every_steps=300, seed=ctx.seed,
                         precision=ctx.precision)
    result = train_classifier(model, data, recipe, ctx.work_dir, {"variant": "distilled-resnet18", "init": init},
                              device=ctx.device)
    model.save_pretrained(str(ctx.out_dir), safe_serialization=True)
    ctx.preprocess.save(ctx.out_dir)
    parameters = sum(p.numel() for p in model.parameters())
    return {"parameters": parameters, "teacher_parameters": ctx.base_parameter_count,
            "parameters_vs_teacher": round(parameters / ctx.base_parameter_count, 4), "init": init,
            "distillation": {"epochs": round(result.epochs, 2), "steps": result.steps,
                             "minutes": round(result.minutes, 2), "val_accuracy": result.best_val_accuracy,
                             "precision": result.precision, "temperature": 2.0, "alpha": 0.5}}


register_variant(VariantSpec(
    name="distilled-resnet18",
    runtime="pytorch",
    summary="ResNet-18 (microsoft/resnet-18 architecture) distilled from the plain ViT: KL at T=2 + hard labels.",
    build=build,
    predictor=TorchPredictor,
    requires=("torch", "transformers"),
    order=90,
))
