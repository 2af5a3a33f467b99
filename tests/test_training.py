"""Training is reproducible and resumes exactly where it was interrupted, with and without a teacher."""

import dataclasses

import numpy as np
import pytest
import torch
from transformers import ViTConfig, ViTForImageClassification

from build_models.context import BuildContext
from build_models.sources.base_model import SCRATCH_PRESETS, label_maps
from build_models.sources.dataset import SplitConfig, make_splits
from build_models.training import loop as training
from build_models.training import teacher
from build_models.training.loop import TrainConfig, train_classifier
from build_models.training.teacher import DistillTargets
from vitcore.preprocessing import PreprocessConfig
from vitcore.threads import ThreadSettings


@pytest.fixture(scope="module")
def tiny_data(dataset, tmp_path_factory):
    splits = make_splits(dataset.labels, SplitConfig(limit=200))
    ctx = BuildContext(base_dir=tmp_path_factory.mktemp("b"), out_dir=tmp_path_factory.mktemp("o"),
                       work_dir=tmp_path_factory.mktemp("w"), label_names=["cat", "dog"],
                       preprocess=PreprocessConfig(32, 32), threads=ThreadSettings(), options={},
                       data=dataset, splits=splits, cache_dir=tmp_path_factory.mktemp("c"))
    return ctx.train_data()


def _model():
    torch.manual_seed(0)
    return ViTForImageClassification(ViTConfig(**SCRATCH_PRESETS["tiny"], **label_maps(["cat", "dog"])))


CONFIG = TrainConfig(minutes=None, epochs=3.0, batch_size=16, lr=1e-3, warmup_steps=3, eval_every_steps=5)


def _synthetic_targets(count: int) -> DistillTargets:
    """Teacher maps with a fixed seed: the plumbing of token distillation, not its quality."""
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(count, 8, 3, 3)).astype(np.float16)
    taps = rng.normal(size=(count, 4, 6, 6)).astype(np.float16)
    return DistillTargets(maps, torch.randn(2, 8), torch.zeros(2), torch.zeros(8), torch.ones(8),
                          taps, torch.zeros(4), torch.ones(4))


@pytest.mark.parametrize("distilled", [False, True], ids=["plain", "token-distillation"])
def test_interrupted_training_resumes_to_the_same_weights(tiny_data, tmp_path, monkeypatch, distilled):
    config = dataclasses.replace(CONFIG, feature_weight=1.0 if distilled else 0.0,
                                 tap_weight=1.0 if distilled else 0.0, tap_layer=0)
    targets = _synthetic_targets(len(tiny_data.train_labels)) if distilled else None
    data = dataclasses.replace(tiny_data, targets=targets)
    straight = _model()
    result = train_classifier(straight, data, config, tmp_path / "straight", {})
    assert result.steps == 30 and len(result.history) == 6

    real_loss, calls = training._batch_loss, {"n": 0}

    def interrupting_loss(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 13:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(training, "_batch_loss", interrupting_loss)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(_model(), data, config, tmp_path / "resumed", {})
    monkeypatch.setattr(training, "_batch_loss", real_loss)
    resumed = _model()
    result_resumed = train_classifier(resumed, data, config, tmp_path / "resumed", {})
    assert result_resumed.steps == 30
    assert result_resumed.best_val_accuracy == result.best_val_accuracy
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    again = _model()
    train_classifier(again, data, config, tmp_path / "again", {})  # a fresh run: the same model, bit for bit
    for (name, a), b in zip(straight.state_dict().items(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_learning_rate_warms_up_then_decays():
    config = TrainConfig(lr=1e-3, warmup_steps=10, min_lr_ratio=0.0)
    assert training.learning_rate(config, 0, 0.0) == pytest.approx(1e-4)
    assert training.learning_rate(config, 9, 0.0) == pytest.approx(1e-3)
    assert training.learning_rate(config, 50, 0.5) == pytest.approx(5e-4)
    assert training.learning_rate(config, 99, 1.0) == pytest.approx(0.0, abs=1e-12)


def test_progressive_resolution_runs_its_first_part_at_the_low_size_reproducibly(tiny_data, tmp_path):
    """low_res_fraction 0.5: the first 15 of 30 steps see 16-px crops (a 2x2 grid of 8-px patches, position
    embeddings interpolated, teacher maps sampled on that grid), the rest 32 px; bit-identical when repeated."""
    config = dataclasses.replace(CONFIG, feature_weight=1.0, low_res_fraction=0.5, low_res_size=16)
    data = dataclasses.replace(tiny_data, targets=_synthetic_targets(len(tiny_data.train_labels)))
    models = []
    for run in ("first", "second"):
        model, sizes = _model(), []
        hook = model.vit.embeddings.patch_embeddings.register_forward_pre_hook(
            lambda module, inputs, seen=sizes: seen.append(inputs[0].shape[-1]) if module.training else None)
        result = train_classifier(model, data, config, tmp_path / run, {})
        hook.remove()
        assert result.steps == 30 and sizes == [16] * 15 + [32] * 15
        models.append(model)
    for (name, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert models[0].config.image_size == 32  # the saved model stays at its own size


def test_progressive_resolution_needs_a_vit(tiny_data, tmp_path):
    from transformers import ResNetConfig, ResNetForImageClassification

    resnet = ResNetForImageClassification(ResNetConfig(num_labels=2, hidden_sizes=[8, 8, 8, 8], embedding_size=8))
    with pytest.raises(ValueError, match="ViT"):
        train_classifier(resnet, tiny_data, dataclasses.replace(CONFIG, low_res_fraction=0.5), tmp_path, {})


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_precision_is_applied_reproducibly_and_serving_attention_restored(tiny_data, tmp_path, precision):
    """bf16 autocast runs the ViT's matmuls in bf16 (weights stay fp32); two runs are bit-identical; the
    model leaves training with the attention implementation it had (eager is used while training)."""
    config = dataclasses.replace(CONFIG, epochs=1.0, precision=precision)
    models = []
    for run in ("first", "second"):
        model, dtypes, attention = _model(), set(), set()
        served = model.config._attn_implementation
        query = model.vit.encoder.layer[0].attention.attention.query
        hook = query.register_forward_hook(
            lambda module, _i, out, seen=dtypes: seen.add(out.dtype) if module.training else None)
        hook2 = query.register_forward_hook(
            lambda module, _i, _o, m=model, seen=attention: seen.add(m.config._attn_implementation)
            if module.training else None)
        result = train_classifier(model, tiny_data, config, tmp_path / run, {})
        hook.remove()
        hook2.remove()
        assert result.precision == precision
        assert dtypes == {torch.bfloat16 if precision == "bf16" else torch.float32}
        assert attention == {"eager"} and model.config._attn_implementation == served
        assert all(p.dtype == torch.float32 for p in model.parameters())
        models.append(model)
    for (name, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_auto_precision_is_bf16_only_where_the_cpu_has_amx(monkeypatch):
    monkeypatch.setattr(training, "cpu_facts", lambda: {"flags": ["avx2", "avx512_bf16", "amx_bf16"]})
    assert training.training_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(training, "cpu_facts", lambda: {"flags": ["avx2", "avx512_bf16"]})
    assert training.training_precision("auto", "cpu") == "fp32"
    assert training.training_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision"):
        training.training_precision("fp16", "cpu")


def test_feature_loss_weighs_patch_tokens_and_the_class_token_separately():
    target = torch.randn(2, 4, 8)
    exact = torch.cat([target.mean(dim=1, keepdim=True), target], dim=1)
    config = dataclasses.replace(CONFIG, feature_weight=2.0, pooled_weight=3.0)
    assert training._feature_loss(exact, target, config).item() == pytest.approx(0.0, abs=1e-6)
    wrong_class_token = torch.cat([-target.mean(dim=1, keepdim=True), target], dim=1)
    assert training._feature_loss(wrong_class_token, target, config).item() == pytest.approx(3.0 * 2.0, abs=1e-5)
    wrong_patches = torch.cat([target.mean(dim=1, keepdim=True), -target], dim=1)
    assert training._feature_loss(wrong_patches, target, config).item() == pytest.approx(2.0 * 2.0, abs=1e-5)


def test_feature_loss_adds_the_mid_level_tokens_by_their_weight():
    target, tap_target = torch.randn(2, 4, 8), torch.randn(2, 4, 5)
    exact = torch.cat([target.mean(dim=1, keepdim=True), target], dim=1)
    config = dataclasses.replace(CONFIG, feature_weight=1.0, tap_weight=0.5)
    assert training._feature_loss(exact, target, config, tap_target, tap_target).item() == pytest.approx(0, abs=1e-6)
    opposite = training._feature_loss(exact, target, config, -tap_target, tap_target).item()
    assert opposite == pytest.approx(0.5 * 2.0, abs=1e-5)


def test_crop_targets_read_both_maps_on_the_grid_and_the_tap_only_when_asked():
    targets = _synthetic_targets(2)
    identity = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).repeat(2, 1, 1)
    crop = targets.for_crops(np.array([0, 1]), identity, grid=6)
    assert crop.tokens.shape == (2, 36, 8) and crop.tap_tokens is not None and crop.tap_tokens.shape == (2, 36, 4)
    exact = torch.from_numpy(targets.tap_maps[:2]).float()  # the identity crop of a 6x6 map on a 6x6 grid
    torch.testing.assert_close(crop.tap_tokens, exact.flatten(2).transpose(1, 2), atol=1e-5, rtol=0)
    assert targets.for_crops(np.array([0, 1]), identity, grid=6, with_tap=False).tap_tokens is None


def test_pool_to_area_averages_in_chunks():
    maps = np.arange(3 * 2 * 4 * 4, dtype=np.float16).reshape(3, 2, 4, 4)
    pooled = teacher.pool_to(maps, (2, 2), chunk=2)
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(maps).float(), 2).half().numpy()
    assert pooled.dtype == np.float16 and np.array_equal(pooled, expected)
