"""Structured pruning (build_models.training.prune): the cut removes what was asked, the refit recovers."""

from __future__ import annotations

import pytest
import torch

from build_models.training.prune import PruneAmount, heads_to_remove, measure_importance, prune_and_refit


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    return torch.randn(48, 3, 32, 32, generator=torch.Generator().manual_seed(2))


def tiny_vit():  # type: ignore[no-untyped-def]
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
                       image_size=32, patch_size=8, num_labels=2)
    return ViTForImageClassification(config).eval()


def hidden(model, pixels):  # type: ignore[no-untyped-def]
    with torch.inference_mode():
        return model.vit(pixel_values=pixels).last_hidden_state


def test_each_layer_keeps_a_head_and_the_least_important_go_first():
    import numpy as np

    from build_models.training.prune import Importance

    importance = Importance([np.array([0.1, 0.5, 0.4]), np.array([0.01, 0.02, 0.97])], [])
    assert heads_to_remove(importance, 0.5) == {0: [0], 1: [0, 1]}
    assert heads_to_remove(importance, 1.0) == {0: [0, 2], 1: [0, 1]}  # never a layer's last head


def test_the_refit_brings_the_pruned_network_back_towards_the_unpruned_one(pixels):
    dense = tiny_vit()
    target = hidden(dense, pixels)
    errors = {}
    for refit in (False, True):
        model = tiny_vit()
        facts = prune_and_refit(model, pixels, PruneAmount(0.25, 0.5), refit_layers=refit, progress=lambda _: None)
        assert sum(len(h) for h in facts["heads_removed"].values()) == 3 and facts["mlp_width"] == 64
        errors[refit] = float((hidden(model, pixels) - target).pow(2).mean())
    assert errors[True] < 0.1 * errors[False], errors  # measured 0.0010 against 0.0188


def test_importance_is_measured_per_head_and_per_neuron(pixels):
    importance = measure_importance(tiny_vit(), pixels)
    assert [len(h) for h in importance.heads] == [4, 4, 4] and [len(n) for n in importance.neurons] == [128] * 3
    # a layer's heads write nearly uncorrelated outputs: their shares add up to about the whole (0.99-1.06)
    assert all(abs(float(h.sum()) - 1.0) < 0.1 and (h > 0).all() for h in importance.heads)
