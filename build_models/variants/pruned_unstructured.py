"""`pruned-unstructured`: L1 magnitude pruning of 10% of every Linear weight, made permanent.

Stored sparsely: each pruned matrix as a packed bit mask plus its non-zero values, so the file
is smaller than the dense one; loading expands it back to dense fp32 for PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from build_models.context import BuildContext
from vitcore.backends.pytorch import SPARSE_WEIGHTS

AMOUNT = 0.10


def prune_linears(model: Any, amount: float) -> dict[str, float]:
    """Per-layer L1 unstructured pruning of every nn.Linear weight, made permanent."""
    import torch
    from torch.nn.utils import prune

    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    for _, module in linears:
        prune.l1_unstructured(module, name="weight", amount=amount)
        prune.remove(module, "weight")
    pruned = sum(int((m.weight == 0).sum()) for _, m in linears)
    prunable = sum(m.weight.numel() for _, m in linears)
    total = sum(p.numel() for p in model.parameters())
    zeros = sum(int((p == 0).sum()) for p in model.parameters())
    return {"sparsity": pruned / prunable, "sparsity_all_parameters": zeros / total,
            "pruned_weights": pruned, "prunable_weights": prunable}


def pack_sparse(state: dict[str, Any], sparse_keys: set[str]) -> dict[str, Any]:
    import torch

    packed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in sparse_keys:
            mask = (value != 0).numpy().reshape(-1)
            packed[f"{key}::mask"] = torch.from_numpy(np.packbits(mask))
            packed[f"{key}::values"] = value.reshape(-1)[torch.from_numpy(mask)].contiguous()
            packed[f"{key}::shape"] = torch.tensor(list(value.shape), dtype=torch.int64)
        else:
            packed[key] = value.contiguous()
    return packed



def build(ctx: BuildContext) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(str(ctx.base_dir)).eval()
    facts = prune_linears(model, AMOUNT)
    state = model.state_dict()
    sparse_keys = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    save_file(pack_sparse(state, sparse_keys), str(ctx.out_dir / SPARSE_WEIGHTS))
    model.config.save_pretrained(str(ctx.out_dir))
    ctx.preprocess.save(ctx.out_dir)
    dense_bytes = sum(v.numel() * v.element_size() for v in state.values())
    stored_bytes = (ctx.out_dir / SPARSE_WEIGHTS).stat().st_size
    return {"parameters": ctx.base_parameter_count, "amount": AMOUNT, **facts,
            "dense_weights_mb": round(dense_bytes / 1e6, 3), "stored_weights_mb": round(stored_bytes / 1e6, 3),
            "size_note": f"dense {dense_bytes / 1e6:.2f}",
            "format": "safetensors: bit mask + non-zero values per pruned matrix"}
