"""`pruned-structured`: 10% of attention heads and 10% of MLP neurons removed by L1 norm.

Heads are ranked globally by the L1 norm of their query/key/value rows and output columns and
removed with ``prune_heads``; MLP neurons are ranked per layer by the L1 norm of their fc1 row and
fc2 column and cut out of both Linear layers. The matrices really shrink, so parameters, size
and latency fall. A short distillation from the unpruned model recovers accuracy.
"""

from __future__ import annotations

import math
from typing import Any, cast

from build_models.context import BuildContext
from build_models.training.loop import TrainConfig, train_classifier

AMOUNT = 0.10


def head_scores(model: Any) -> list[tuple[float, int, int]]:
    """(L1 norm, layer, head) for every attention head."""
    scores = []
    for index, layer in enumerate(model.vit.encoder.layer):
        attention = layer.attention.attention
        size = attention.attention_head_size
        output = layer.attention.output.dense.weight
        for head in range(attention.num_attention_heads):
            rows = slice(head * size, (head + 1) * size)
            norm = sum(float(lin.weight[rows].abs().sum()) for lin in (attention.query, attention.key, attention.value))
            scores.append((norm + float(output[:, rows].abs().sum()), index, head))
    return scores


def prune_heads(model: Any, amount: float) -> dict[int, list[int]]:
    scores = sorted(head_scores(model))
    per_layer = {i: layer.attention.attention.num_attention_heads for i, layer in enumerate(model.vit.encoder.layer)}
    chosen: dict[int, list[int]] = {}
    for _, layer, head in scores:
        if sum(len(h) for h in chosen.values()) >= round(amount * sum(per_layer.values())):
            break
        if per_layer[layer] - len(chosen.get(layer, [])) > 1:  # every layer keeps at least one head
            chosen.setdefault(layer, []).append(head)
    model.prune_heads(chosen)
    return chosen


def prune_mlp_neurons(model: Any, amount: float) -> int:
    """Remove the same number of lowest-L1 neurons from every MLP; returns the new width."""
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    width = model.config.intermediate_size
    keep = width - int(math.floor(amount * width))
    for layer in model.vit.encoder.layer:
        fc1, fc2 = layer.intermediate.dense, layer.output.dense
        norms = fc1.weight.abs().sum(dim=1) + fc2.weight.abs().sum(dim=0)
        index = cast(torch.LongTensor, torch.sort(torch.topk(norms, keep).indices).values)
        layer.intermediate.dense = prune_linear_layer(fc1, index, dim=0)
        layer.output.dense = prune_linear_layer(fc2, index, dim=1)
    model.config.intermediate_size = keep
    return keep


def build(ctx: BuildContext) -> dict[str, Any]:
    from transformers import AutoModelForImageClassification

    teacher = AutoModelForImageClassification.from_pretrained(str(ctx.base_dir)).to(ctx.device).eval()
    model = AutoModelForImageClassification.from_pretrained(str(ctx.base_dir))
    heads_before = sum(layer.attention.attention.num_attention_heads for layer in model.vit.encoder.layer)
    pruned = prune_heads(model, AMOUNT)
    width = prune_mlp_neurons(model, AMOUNT)
    facts: dict[str, Any] = {"heads_removed": {str(k): v for k, v in pruned.items()}, "heads_before": heads_before,
                             "mlp_width": width, "parameters": sum(p.numel() for p in model.parameters())}
    facts["parameters_removed_fraction"] = 1 - facts["parameters"] / ctx.base_parameter_count
    epochs = float(ctx.options.get("prune_recovery_epochs", 0.0))
    if epochs > 0:
        ctx.threads.apply_torch()
        data = ctx.train_data()
        data.teacher = lambda x: teacher(pixel_values=x).logits
        recipe = TrainConfig(minutes=None, epochs=epochs, batch_size=64, lr=1e-4, warmup_steps=20, label_smoothing=0.0,
                             eval_every_steps=100, distill_alpha=0.7, seed=ctx.seed,
                             precision=ctx.precision)
        result = train_classifier(model, data, recipe, ctx.work_dir, {"variant": "pruned-structured"},
                                  device=ctx.device)
        facts["recovery"] = {"epochs": epochs, "steps": result.steps, "minutes": round(result.minutes, 2),
                             "val_accuracy": result.best_val_accuracy, "precision": result.precision}
    model.save_pretrained(str(ctx.out_dir), safe_serialization=True)
    ctx.preprocess.save(ctx.out_dir)
    return facts
