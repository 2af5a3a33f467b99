"""Token merging (ToMe, Bolya et al., ICLR 2023) for a `transformers` ViT, with a static shape for export.

After each block's attention, bipartite soft matching pairs the alternate tokens by the cosine similarity of
their keys (mean over heads) and merges the ``r`` most similar pairs, weighted by how many patches each token
already stands for; attention then adds ``log(size)`` to its logits (proportional attention), so a merged token
weighs what its patches did. The class token is never merged. With a fixed ``r`` every shape is static, so the
network exports to ONNX (``scatter_add`` gives ``ScatterElements`` with ``reduction="add"``, opset 16+;
``scatter_reduce`` would add rank-checking ``If`` nodes that NNCF then walks one by one) and on to OpenVINO.
No package patches `transformers`' ViT, so this module reimplements the encoder loop over the model's own blocks;
at ``r = 0`` it computes exactly what the model does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MERGED_SHARES = (0.25, 0.5, 0.625, 0.75)  # candidate shares of the patch tokens merged away by the last block


def schedule_for(share: float, patches: int, blocks: int) -> int:
    """The per-block ``r`` that merges away ``share`` of the patch tokens over ``blocks`` blocks."""
    return int(math.floor(share * patches / blocks))


def TokenMergingViT(model: Any, r: int) -> Any:  # noqa: N802 - a factory standing for a module class (lazy torch)
    """``model`` (a ViTForImageClassification, heads possibly pruned) as a module from pixel values to logits
    that merges ``r`` tokens after every block's attention."""
    import torch

    class _TokenMerging(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.r = model, r

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            vit = self.model.vit
            x = vit.embeddings(pixel_values)
            size = torch.ones_like(x[..., :1])
            for layer in vit.encoder.layer:
                attended, keys = _attention(layer, layer.layernorm_before(x), size)
                x = x + attended
                r = min(self.r, (int(x.shape[1]) - 1) // 2)
                if r > 0:
                    x, size = _merge(x, size, keys, r)
                x = layer.output(layer.intermediate(layer.layernorm_after(x)), x)
            return self.model.classifier(vit.layernorm(x)[:, 0, :])

    return _TokenMerging().eval()


def _attention(layer: Any, x: Any, size: Any) -> tuple[Any, Any]:
    """The block's self-attention with proportional attention; returns its output and the mean key per token."""
    import torch

    attention = layer.attention.attention
    batch, tokens, _ = x.shape
    heads, head_size = attention.num_attention_heads, attention.attention_head_size

    def split(linear: Any) -> Any:
        return linear(x).view(batch, tokens, heads, head_size).transpose(1, 2)

    query, key, value = split(attention.query), split(attention.key), split(attention.value)
    logits = query @ key.transpose(-1, -2) / math.sqrt(head_size) + size.log().transpose(1, 2)[:, None]
    context = (torch.softmax(logits, dim=-1) @ value).transpose(1, 2).reshape(batch, tokens, heads * head_size)
    return layer.attention.output.dense(context), key.mean(dim=1)


def _merge(x: Any, size: Any, keys: Any, r: int) -> tuple[Any, Any]:
    """Bipartite soft matching: each even token's most similar odd token; the ``r`` best pairs merge into the odd
    one (size-weighted mean). The class token (even position 0) never merges; the rest keep their order."""
    import torch

    metric = keys / keys.norm(dim=-1, keepdim=True)
    even, odd = metric[:, ::2], metric[:, 1::2]
    scores = even @ odd.transpose(-1, -2)
    protect = torch.zeros(scores.shape[1], 1, dtype=scores.dtype)
    protect[0] = -math.inf
    best, partner = (scores + protect).max(dim=-1)
    order = best.argsort(dim=-1, descending=True)[..., None]
    kept, merged = order[:, r:].sort(dim=1).values, order[:, :r]
    target = partner[..., None].gather(dim=1, index=merged)

    def combine(values: Any) -> Any:
        channels = values.shape[-1]
        source, destination = values[:, ::2], values[:, 1::2]
        unmerged = source.gather(dim=1, index=kept.expand(-1, -1, channels))
        moved = source.gather(dim=1, index=merged.expand(-1, -1, channels))
        destination = destination.scatter_add(1, target.expand(-1, -1, channels), moved)
        return torch.cat([unmerged, destination], dim=1)

    total = combine(size)
    return combine(x * size) / total, total


def tokens_per_block(patches: int, blocks: int, r: int) -> list[int]:
    """Tokens entering each block's MLP (after that block's merge), class token included."""
    counts, tokens = [], patches + 1
    for _ in range(blocks):
        tokens -= min(r, (tokens - 1) // 2) if r else 0
        counts.append(tokens)
    return counts


def accuracy_at(model: Any, r: int, pixels: np.ndarray, labels: np.ndarray, preprocess: Any) -> float:
    """Accuracy of ``model`` merging ``r`` tokens per block on uint8 NHWC ``pixels``."""
    import torch

    from vitcore.preprocessing import normalize_uint8

    network = TokenMergingViT(model, r)
    with torch.inference_mode():
        predicted = [network(torch.from_numpy(normalize_uint8(pixels[i:i + 32], preprocess))).argmax(-1).numpy()
                     for i in range(0, len(pixels), 32)]
    return round(float((np.concatenate(predicted) == labels).mean()), 4)


def choose_r(model: Any, pixels: np.ndarray, labels: np.ndarray, preprocess: Any,
             tolerance: float = 0.01) -> dict[str, Any]:
    """The largest candidate ``r`` whose validation accuracy is within ``tolerance`` of the unmerged model's."""
    config = model.config
    patches = (config.image_size // config.patch_size) ** 2
    scored = {0: accuracy_at(model, 0, pixels, labels, preprocess)}
    for share in MERGED_SHARES:
        r = schedule_for(share, patches, config.num_hidden_layers)
        if r > 0 and r not in scored:
            scored[r] = accuracy_at(model, r, pixels, labels, preprocess)
    chosen = max((r for r, accuracy in scored.items() if accuracy >= scored[0] - tolerance), default=0)
    return {"r": chosen, "validation_accuracy": {str(r): a for r, a in scored.items()}, "tolerance": tolerance,
            "validation_images": len(labels), "tokens_per_block": tokens_per_block(patches, config.num_hidden_layers,
                                                                                   chosen)}
