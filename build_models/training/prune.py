"""Structured pruning of a `transformers` ViT, chosen by activations and recovered by least squares.

1. **Importance from activations.** One pass of the unpruned model over calibration images gathers the mean and
   covariance of each output projection's inputs. A head's importance is the variance it writes through the
   attention output, as a share of its layer's; heads are ranked across the whole network (every layer keeps
   one). An MLP neuron's is what removing it costs once fc2 is refit on the others (optimal brain surgeon:
   ``‖W₂[:, j]‖² / (Σ⁻¹)_jj``); the same number leaves every layer (a `transformers` config has one MLP width).
   Chosen by a probe on the dinov2 test base (docs/probes-pruning.json).
2. **The cut.** Heads leave through ``prune_heads`` (recorded in the config, so ``from_pretrained`` rebuilds the
   shapes); neurons leave fc1's rows and fc2's columns. The matrices really shrink.
3. **Least-squares refit.** Layer by layer, on the pruned network's own hidden states, each output projection
   (attention output and fc2) is solved by ridge regression so that the block writes what the unpruned network
   writes into the residual stream at that point, upstream error included. No gradient step: a 224 px ViT-S
   refits in about two forward passes over the calibration images.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

RIDGE = 1e-3  # relative to the mean diagonal of each regression's Gram matrix


@dataclass(frozen=True)
class PruneAmount:
    heads: float  # fraction of all attention heads removed
    mlp: float  # fraction of each MLP's neurons removed


@dataclass
class Importance:
    heads: list[np.ndarray]  # per layer: what removing each head costs, as a share of the layer's attention output
    neurons: list[np.ndarray]  # per layer: what removing each MLP neuron costs in fc2's output


def _batches(total: int, size: int) -> Iterator[slice]:
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def _capture_input(module: Any) -> tuple[list[Any], Callable[[], None]]:
    seen: list[Any] = []
    handle = module.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    return seen, handle.remove


class _Moments:
    """Running mean and covariance of a projection's inputs (float32 per batch, float64 across batches)."""

    def __init__(self, width: int) -> None:
        self.count, self.total, self.products = 0, np.zeros(width), np.zeros((width, width))

    def add(self, x: Any) -> None:
        flat = x.reshape(-1, x.shape[-1])
        self.count += len(flat)
        self.total += flat.sum(dim=0).double().numpy()
        self.products += (flat.T @ flat).double().numpy()

    def precision(self) -> np.ndarray:
        """The inverse of the (ridged) covariance."""
        mean = self.total / self.count
        covariance = self.products / self.count - np.outer(mean, mean)
        ridge = 10 * RIDGE * float(np.mean(np.diag(covariance)))
        return np.asarray(np.linalg.inv(covariance + ridge * np.eye(len(covariance))))

    def output_energy(self, weight: np.ndarray, columns: np.ndarray | None = None) -> float:
        """The variance a projection (``weight``, reading only ``columns`` of the input) writes."""
        mean = self.total / self.count
        covariance = self.products / self.count - np.outer(mean, mean)
        if columns is not None:
            covariance = covariance[np.ix_(columns, columns)]
        return float(np.trace(weight @ covariance @ weight.T))


def measure_importance(model: Any, pixels: Any, batch_size: int = 16) -> Importance:
    """What removing each head and each MLP neuron of ``model`` (unpruned) costs, measured on ``pixels``
    [N,3,H,W]: heads as a share of their layer's attention output, neurons in their layer's fc2 output."""
    import torch

    layers = model.vit.encoder.layer
    moments = [(_Moments(layer.attention.output.dense.in_features), _Moments(layer.output.dense.in_features))
               for layer in layers]
    captures = [(_capture_input(layer.attention.output.dense), _capture_input(layer.output.dense)) for layer in layers]
    with torch.no_grad():
        for rows in _batches(len(pixels), batch_size):
            model(pixel_values=pixels[rows])
            for ((ctx_seen, _), (mlp_seen, _)), (ctx, mlp) in zip(captures, moments, strict=True):
                ctx.add(ctx_seen.pop())
                mlp.add(mlp_seen.pop())
    for (_, remove_ctx), (_, remove_mlp) in captures:
        remove_ctx()
        remove_mlp()
    heads, neurons = [], []
    for layer, (ctx, mlp) in zip(layers, moments, strict=True):
        size = layer.attention.attention.attention_head_size
        weight = layer.attention.output.dense.weight.detach().double().numpy()
        costs = [ctx.output_energy(weight[:, h * size:(h + 1) * size], np.arange(h * size, (h + 1) * size))
                 for h in range(layer.attention.attention.num_attention_heads)]
        heads.append(np.asarray(costs) / ctx.output_energy(weight))
        fc2 = layer.output.dense.weight.detach().double().numpy()
        # optimal brain surgeon: removing neuron j and refitting fc2 on the rest costs ‖W₂[:, j]‖² / (Σ⁻¹)_jj
        neurons.append((fc2**2).sum(axis=0) / np.diag(mlp.precision()))
    return Importance(heads, neurons)


def heads_to_remove(importance: Importance, fraction: float) -> dict[int, list[int]]:
    """The globally least important heads, ``round(fraction × all heads)`` of them, each layer keeping one."""
    ranked = sorted((float(share), layer, head) for layer, shares in enumerate(importance.heads)
                    for head, share in enumerate(shares))
    total = sum(len(shares) for shares in importance.heads)
    chosen: dict[int, list[int]] = {}
    for _, layer, head in ranked:
        if sum(len(h) for h in chosen.values()) >= round(fraction * total):
            break
        if len(importance.heads[layer]) - len(chosen.get(layer, [])) > 1:
            chosen.setdefault(layer, []).append(head)
    return {layer: sorted(heads) for layer, heads in sorted(chosen.items())}


def cut(model: Any, importance: Importance, amount: PruneAmount) -> dict[str, Any]:
    """Remove the least important heads and neurons from ``model`` in place; returns what was removed."""
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    removed = heads_to_remove(importance, amount.heads)
    if removed:
        model.prune_heads(removed)
    width = model.config.intermediate_size
    keep = width - int(math.floor(amount.mlp * width))
    for layer, scores in zip(model.vit.encoder.layer, importance.neurons, strict=True):
        index = cast(torch.LongTensor, torch.sort(torch.topk(torch.from_numpy(scores), keep).indices).values)
        layer.intermediate.dense = prune_linear_layer(layer.intermediate.dense, index, dim=0)
        layer.output.dense = prune_linear_layer(layer.output.dense, index, dim=1)
    model.config.intermediate_size = keep
    return {"heads_removed": {str(k): v for k, v in removed.items()}, "mlp_width": keep}


class _Regression:
    """Accumulates ``[x, 1]ᵀ[x, 1]`` and ``[x, 1]ᵀ y`` (float32 per batch, float64 across batches); solves the
    ridge problem for a Linear's weight and bias."""

    def __init__(self, inputs: int, outputs: int) -> None:
        self.gram = np.zeros((inputs + 1, inputs + 1))
        self.cross = np.zeros((inputs + 1, outputs))

    def add(self, x: Any, y: Any) -> None:
        import torch

        flat = x.reshape(-1, x.shape[-1])
        flat = torch.cat([flat, torch.ones(len(flat), 1, dtype=flat.dtype)], dim=1)
        self.gram += (flat.T @ flat).double().numpy()
        self.cross += (flat.T @ y.reshape(-1, y.shape[-1])).double().numpy()

    def solve_into(self, linear: Any) -> None:
        import torch

        ridge = RIDGE * float(np.mean(np.diag(self.gram)))
        solution = np.linalg.solve(self.gram + ridge * np.eye(len(self.gram)), self.cross)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(solution[:-1].T).to(linear.weight.dtype))
            linear.bias.copy_(torch.from_numpy(solution[-1]).to(linear.bias.dtype))


def refit(pruned: Any, dense: Any, pixels: Any, batch_size: int = 16, progress: Callable[[str], None] = print) -> None:
    """Refit ``pruned``'s attention-output and fc2 projections, layer by layer, so that each block's output on
    the pruned network's own hidden states matches the dense network's residual stream over ``pixels``."""
    import torch

    with torch.no_grad():
        ours = torch.cat([pruned.vit.embeddings(pixels[rows]) for rows in _batches(len(pixels), batch_size)])
        theirs = ours.clone()
        for index, (mine, reference) in enumerate(zip(pruned.vit.encoder.layer, dense.vit.encoder.layer,
                                                      strict=True)):
            ours, theirs = _refit_half(ours, theirs, _attention_half(mine), _attention_half(reference), batch_size)
            ours, theirs = _refit_half(ours, theirs, _mlp_half(mine), _mlp_half(reference), batch_size)
            progress(f"refit layer {index + 1}/{len(pruned.vit.encoder.layer)}")


@dataclass
class _Half:
    """One residual half of a ViT block: ``x + projection(inner(x))``."""

    inner: Callable[[Any], Any]  # x -> the projection's input
    projection: Any  # the Linear writing into the residual stream


def _attention_half(layer: Any) -> _Half:
    def inner(x: Any) -> Any:
        seen, remove = _capture_input(layer.attention.output.dense)
        layer.attention(layer.layernorm_before(x))
        remove()
        return seen[0]

    return _Half(inner, layer.attention.output.dense)


def _mlp_half(layer: Any) -> _Half:
    return _Half(lambda x: layer.intermediate(layer.layernorm_after(x)), layer.output.dense)


def _refit_half(ours: Any, theirs: Any, mine: _Half, reference: _Half, batch_size: int) -> tuple[Any, Any]:
    import torch

    regression = _Regression(mine.projection.in_features, mine.projection.out_features)
    ahead = []
    for rows in _batches(len(ours), batch_size):
        their_next = theirs[rows] + reference.projection(reference.inner(theirs[rows]))
        regression.add(mine.inner(ours[rows]), their_next - ours[rows])
        ahead.append(their_next)
    regression.solve_into(mine.projection)
    mine_next = [ours[rows] + mine.projection(mine.inner(ours[rows])) for rows in _batches(len(ours), batch_size)]
    return torch.cat(mine_next), torch.cat(ahead)


def prune_and_refit(model: Any, pixels: Any, amount: PruneAmount, refit_layers: bool = True,
                    progress: Callable[[str], None] = print,
                    on_cut: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Prune ``model`` in place by ``amount`` (importance and refit measured on ``pixels``); returns the facts.
    ``on_cut`` sees the model as cut, before the refit (to score what the refit recovers)."""
    model.eval()
    dense = copy.deepcopy(model)
    importance = measure_importance(model, pixels)
    facts = cut(model, importance, amount)
    if on_cut is not None:
        on_cut(model)
    if refit_layers:
        refit(model, dense, pixels, progress=progress)
    facts["refit"] = {"images": len(pixels), "ridge": RIDGE} if refit_layers else None
    return facts
