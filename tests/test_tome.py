"""Token merging (build_models.export.tome): exact at r=0, fewer tokens and MACs at r>0, exported faithfully."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from build_models.export.formats import export_module_onnx
from build_models.export.tome import TokenMergingViT, tokens_per_block
from build_models.measure.limit import macs_of_call


def count_macs(network, height: int, width: int) -> int:  # type: ignore[no-untyped-def]
    return macs_of_call(lambda: network(torch.zeros(1, 3, height, width)))


@pytest.fixture(scope="module")
def vit():  # type: ignore[no-untyped-def]
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                       image_size=32, patch_size=4, num_labels=2, attn_implementation="eager")
    model = ViTForImageClassification(config).eval()
    model.prune_heads({1: [0, 2], 3: [1]})  # token merging must also run a ViT with pruned heads
    return model


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_no_merging_computes_exactly_what_the_vit_does(vit, pixels):
    with torch.inference_mode():
        expected = vit(pixel_values=pixels).logits
        merged = TokenMergingViT(vit, 0)(pixels)
    torch.testing.assert_close(merged, expected, atol=2e-6, rtol=1e-5)


def analytic_macs(r: int) -> int:
    """The fixture's ViT (heads per block 4, 2, 4, 3 of size 16; width 64; MLP 128; 64 patches of 4x4x3): each block
    attends over the tokens it receives, the merge compares even with odd tokens by their mean keys, and the MLP
    runs on the tokens left after the merge."""
    tokens, total = 65, 64 * 48 * 64 + 64 * 2
    for heads in (4, 2, 4, 3):
        inner = heads * 16
        total += 4 * tokens * 64 * inner + 2 * tokens * tokens * inner
        merged = min(r, (tokens - 1) // 2)
        if merged:
            total += ((tokens + 1) // 2) * (tokens // 2) * 16
        tokens -= merged
        total += 2 * tokens * 64 * 128
    return total


def test_merging_removes_r_tokens_per_block_and_their_work(vit, pixels):
    assert tokens_per_block(64, 4, 8) == [57, 49, 41, 33]
    assert tokens_per_block(16, 4, 6) == [11, 6, 4, 3]  # r is capped at half of what is left, class token apart
    assert count_macs(TokenMergingViT(vit, 0), 32, 32) == analytic_macs(0) == count_macs(vit_logits(vit), 32, 32)
    assert count_macs(TokenMergingViT(vit, 8), 32, 32) == analytic_macs(8) < 0.8 * analytic_macs(0)
    with torch.inference_mode():
        assert not torch.allclose(TokenMergingViT(vit, 8)(pixels), vit(pixel_values=pixels).logits)


def vit_logits(vit):  # type: ignore[no-untyped-def]
    from build_models.export.formats import LogitsOf

    return LogitsOf(vit).eval()


@pytest.mark.parametrize("r", [0, 8])
def test_the_exported_network_equals_its_torch_module(vit, pixels, tmp_path, r):
    import onnxruntime as ort
    import openvino as ov

    from build_models.export.formats import onnx_to_openvino

    network = TokenMergingViT(vit, r)
    onnx_file = export_module_onnx(network, 32, 32, tmp_path / "model.onnx")
    with torch.inference_mode():
        expected = network(pixels).numpy()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"pixel_values": pixels.numpy()})[0], expected, atol=1e-4)
    xml = onnx_to_openvino(onnx_file, tmp_path / "ov")
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.testing.assert_allclose(np.asarray(compiled(pixels.numpy())[0]), expected, atol=1e-4)
