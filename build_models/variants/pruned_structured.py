"""`pruned-structured` (10%) and `pruned-structured-40` (40%): attention heads and MLP neurons removed.

What to remove is chosen from activations on calibration photos, and what pruning lost is recovered by a
least-squares refit of each block's output projections (``build_models.training.prune``); a short distillation
from the unpruned model may follow (``prune_recovery_epochs``) and is kept only where it scores better on the
validation sample. The matrices really shrink, so parameters, MACs, size and latency fall. The build records the
validation accuracy of the model as cut, as refit and as distilled: what each recovery step bought.
"""

from __future__ import annotations

from typing import Any

from build_models.context import BuildContext, TrainData
from build_models.training.prune import PruneAmount, prune_and_refit

CALIBRATION_IMAGES = 256  # default of option prune_calibration_images: train photos the importance and refit see
CHECK_IMAGES = 200  # default of option prune_check_images: validation photos each recovery step is scored on


def build(ctx: BuildContext) -> dict[str, Any]:
    return build_pruned(ctx, PruneAmount(heads=0.10, mlp=0.10))


def build_40(ctx: BuildContext) -> dict[str, Any]:
    return build_pruned(ctx, PruneAmount(heads=0.40, mlp=0.40))


def build_pruned(ctx: BuildContext, amount: PruneAmount) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForImageClassification

    ctx.threads.apply_torch()
    model = AutoModelForImageClassification.from_pretrained(str(ctx.base_dir)).eval()
    heads_before = sum(layer.attention.attention.num_attention_heads for layer in model.vit.encoder.layer)
    calibration = torch.from_numpy(ctx.calibration_batch(int(ctx.options.get("prune_calibration_images",
                                                                               CALIBRATION_IMAGES))))
    check = _check_data(ctx)
    accuracy: dict[str, float] = {}
    facts = prune_and_refit(model, calibration, amount, progress=ctx.progress,
                            on_cut=lambda cut: accuracy.__setitem__("cut", _accuracy(cut, check)))
    accuracy["refit"] = _accuracy(model, check)
    facts.update(heads_before=heads_before, amount={"heads": amount.heads, "mlp": amount.mlp},
                 parameters=sum(p.numel() for p in model.parameters()))
    facts["parameters_removed_fraction"] = 1 - facts["parameters"] / ctx.base_parameter_count
    epochs = float(ctx.options.get("prune_recovery_epochs", 0.0))
    if epochs > 0:
        model, facts["distillation"] = _distil(ctx, model, epochs, accuracy, facts)
    facts["recovery"] = {"validation_images": len(check.val_labels), "accuracy": accuracy,
                         "kept": "distilled" if accuracy.get("distilled", -1.0) > accuracy["refit"] else "refit"}
    model.save_pretrained(str(ctx.out_dir), safe_serialization=True)
    ctx.preprocess.save(ctx.out_dir)
    return facts


def _check_data(ctx: BuildContext) -> TrainData:
    pixels, labels, _ = ctx.sampled("val", int(ctx.options.get("prune_check_images", CHECK_IMAGES)))
    return TrainData(pixels[:0], labels[:0], pixels, labels, ctx.preprocess)


def _accuracy(model: Any, data: TrainData) -> float:
    from build_models.training.loop import predict_logits

    logits = predict_logits(lambda x: model(pixel_values=x).logits, data.val_pixels, data.preprocess, batch=32)
    return round(float((logits.argmax(-1) == data.val_labels).mean()), 4)


def _distil(ctx: BuildContext, model: Any, epochs: float, accuracy: dict[str, float],
            cut: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A short distillation from the unpruned model; returns the better of it and ``model`` on validation."""
    import copy

    from transformers import AutoModelForImageClassification

    from build_models.training.loop import TrainConfig, train_classifier

    teacher = AutoModelForImageClassification.from_pretrained(str(ctx.base_dir)).to(ctx.device).eval()
    student = copy.deepcopy(model)
    data = ctx.train_data()
    data.teacher = lambda x: teacher(pixel_values=x).logits
    recipe = TrainConfig(minutes=None, epochs=epochs, batch_size=64, lr=1e-4, warmup_steps=20, label_smoothing=0.0,
                         eval_every_steps=100, distill_alpha=0.7, seed=ctx.seed, precision=ctx.precision)
    fingerprint = {"variant": ctx.out_dir.name, "heads_removed": cut["heads_removed"], "mlp_width": cut["mlp_width"]}
    result = train_classifier(student, data, recipe, ctx.work_dir, fingerprint, device=ctx.device)
    accuracy["distilled"] = _accuracy(student.eval(), _check_data(ctx))
    record = {"epochs": epochs, "steps": result.steps, "minutes": round(result.minutes, 2),
              "precision": result.precision}
    return (student if accuracy["distilled"] > accuracy["refit"] else model), record
