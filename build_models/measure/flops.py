"""The machine's fp32 floor for a ViT: analytic FLOPs per image over the measured peak matmul rate."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def vit_flops(config: Any) -> float:
    """FLOPs (2 x multiply-adds) of one ViTForImageClassification forward pass at batch 1; heads removed by
    ``prune_heads`` (the config's ``pruned_heads``) narrow their layer's attention."""
    patches = (config.image_size // config.patch_size) ** 2
    tokens = patches + 1
    d, mlp = config.hidden_size, config.intermediate_size
    head_size = d // config.num_attention_heads
    pruned = {int(layer): len(heads) for layer, heads in (getattr(config, "pruned_heads", None) or {}).items()}
    layers = 0.0
    for layer in range(config.num_hidden_layers):
        inner = (config.num_attention_heads - pruned.get(layer, 0)) * head_size
        layers += tokens * (4 * d * inner + 2 * d * mlp) + 2 * tokens * tokens * inner
    embed = patches * (config.num_channels * config.patch_size**2) * d
    head = d * config.num_labels
    return 2.0 * (layers + embed + head)


def peak_matmul_gflops(size: int = 2048, runs: int = 10, threads: int = 0) -> float:
    """Best fp32 GFLOP/s of a large square matmul with torch (the machine's practical peak)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def fp32_floor(model_dir: Path, threads: int = 0) -> dict[str, Any]:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_dir))
    if config.model_type != "vit":
        raise ValueError(f"the floor is defined for ViT models, not {config.model_type}")
    flops = vit_flops(config)
    peak = peak_matmul_gflops(threads=threads)
    return {"gflop_per_image": round(flops / 1e9, 3), "peak_gflops": round(peak, 1),
            "floor_ms": round(flops / (peak * 1e9) * 1000, 3)}
