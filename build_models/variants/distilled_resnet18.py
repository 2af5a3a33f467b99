"""`distilled-resnet18`: a ResNet-18 student distilled from the plain ViT teacher.

transformers ResNetForImageClassification with the microsoft/resnet-18 architecture; ImageNet
weights from the hub when it answers, random init otherwise. Loss: KL to the teacher's soft
targets at a temperature, plus cross-entropy on the hard labels.
"""

from __future__ import annotations

from typing import Any

from build_models.base_model import label_maps
from build_models.context import BuildContext
from build_models.hub import hub_reachable
from build_models.predictor import TorchPredictor
from build_models.registry import VariantSpec, register_variant
from build_models.training import TrainConfig, train_classifier

HUB_ID = "microsoft/resnet-18"
RESNET18 = dict(embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2], layer_type="basic",
                hidden_act="relu", downsample_in_first_stage=False)


def student(label_names: list[str], seed: int) -> tuple[Any, str]:
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    if hub_reachable():
        model = ResNetForImageClassification.from_pretrained(HUB_ID, ignore_mismatched_sizes=True,
                                                             **label_maps(label_names))
        return model, f"{HUB_ID} (ImageNet weights)"
    torch.manual_seed(seed)
    return ResNetForImageClassification(ResNetConfig(**RESNET18, **label_maps(label_names))), "random init"


def build(ctx: BuildContext) -> dict[str, Any]:
    from transformers import AutoModelForImageClassification

    ctx.threads.apply_torch()
    teacher = AutoModelForImageClassification.from_pretrained(str(ctx.base_dir)).eval()
    model, init = student(ctx.label_names, ctx.seed)
    minutes = float(ctx.options.get("distill_minutes", 5.0))
    data = ctx.train_data()
    data.teacher = lambda x: teacher(pixel_values=x).logits
    recipe = TrainConfig(minutes=minutes, epochs=float(ctx.options.get("distill_epochs", 5.0)), batch_size=64,
                         lr=2e-3, warmup_steps=100, label_smoothing=0.0, distill_alpha=0.5, distill_temperature=2.0,
                         eval_every_steps=300, seed=ctx.seed)
    result = train_classifier(model, data, recipe, ctx.work_dir, {"variant": "distilled-resnet18", "init": init})
    model.save_pretrained(str(ctx.out_dir), safe_serialization=True)
    ctx.preprocess.save(ctx.out_dir)
    parameters = sum(p.numel() for p in model.parameters())
    return {"parameters": parameters, "teacher_parameters": ctx.base_parameter_count,
            "parameters_vs_teacher": round(parameters / ctx.base_parameter_count, 4), "init": init,
            "distillation": {"minutes_budget": minutes, "epochs": round(result.epochs, 2), "steps": result.steps,
                             "val_accuracy": result.best_val_accuracy, "temperature": 2.0, "alpha": 0.5}}


register_variant(VariantSpec(
    name="distilled-resnet18",
    runtime="pytorch",
    summary="ResNet-18 (microsoft/resnet-18 architecture) distilled from the plain ViT: KL at T=2 + hard labels.",
    build=build,
    predictor=TorchPredictor,
    requires=("torch", "transformers"),
    order=90,
))
