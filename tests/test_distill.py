"""Distillation: the teacher's logits computed once, reused while their inputs hold, recomputed when one changes."""

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageClassification

from build_models.context import BuildContext
from build_models.profiles import get_profile
from build_models.sources.dataset import make_splits
from build_models.training.distill import DistillConfig, teacher_logits
from build_models.training.loop import predict_logits
from vitcore.preprocessing import PreprocessConfig
from vitcore.threads import ThreadSettings

IMAGES = 48


def _context(root: Path, dataset, cache: Path, base_dir: Path | None = None) -> BuildContext:  # type: ignore[no-untyped-def]
    manifest = json.loads((root / "manifest.json").read_text())
    base = base_dir or root / "base"
    return BuildContext(base_dir=base, out_dir=cache / "out", work_dir=cache / "work",
                        label_names=manifest["label_names"], preprocess=PreprocessConfig.from_dir(base),
                        threads=ThreadSettings(), options={}, data=dataset,
                        splits=make_splits(dataset.labels, get_profile("smoke").split), cache_dir=cache)


@pytest.fixture(scope="module")
def first_pass(smoke_artifacts, dataset, tmp_path_factory):  # type: ignore[no-untyped-def]
    ctx = _context(smoke_artifacts, dataset, tmp_path_factory.mktemp("teacher-cache"))
    return ctx, teacher_logits(ctx, ctx.pixels("train")[0][:IMAGES], ctx.rows("train")[:IMAGES])


def test_teacher_logits_are_the_base_models_own(first_pass):  # type: ignore[no-untyped-def]
    ctx, computed = first_pass
    assert not computed.reused and computed.precision in ("f32", "bf16")
    model = AutoModelForImageClassification.from_pretrained(str(ctx.base_dir)).eval()
    expected = predict_logits(lambda x: model(pixel_values=x).logits, ctx.pixels("train")[0][:IMAGES], ctx.preprocess)
    assert computed.logits.shape == (IMAGES, len(ctx.label_names))
    assert (computed.logits.argmax(-1) == expected.argmax(-1)).mean() >= 0.95
    tolerance = 0.15 if computed.precision == "bf16" else 0.01
    assert np.abs(computed.logits.astype(np.float32) - expected).max() < tolerance


def test_teacher_logits_are_reused_while_the_key_holds(first_pass, caplog):  # type: ignore[no-untyped-def]
    ctx, computed = first_pass
    with caplog.at_level(logging.INFO, logger="build_models.training.distill"):
        again = teacher_logits(ctx, ctx.pixels("train")[0][:IMAGES], ctx.rows("train")[:IMAGES])
    assert again.reused and again.precision is None
    assert np.array_equal(again.logits, computed.logits)
    assert "reused" in caplog.text


def test_other_train_rows_are_a_new_cache_entry(first_pass):  # type: ignore[no-untyped-def]
    ctx, computed = first_pass
    shifted = teacher_logits(ctx, ctx.pixels("train")[0][1 : IMAGES + 1], ctx.rows("train")[1 : IMAGES + 1])
    assert not shifted.reused and shifted.key["train_rows"] != computed.key["train_rows"]
    # Each pass picks f32 or bf16 by measured speed, so the overlap agrees to bf16's precision.
    assert np.allclose(shifted.logits[:-1].astype(np.float32), computed.logits[1:].astype(np.float32), atol=0.15)


def test_a_changed_model_file_is_a_new_cache_entry(first_pass, tmp_path):  # type: ignore[no-untyped-def]
    ctx, computed = first_pass
    changed = tmp_path / "base"
    shutil.copytree(ctx.base_dir, changed)
    weights = load_file(str(changed / "model.safetensors"))
    weights["classifier.bias"] = weights["classifier.bias"] + torch.tensor([3.0, -3.0])
    save_file(weights, str(changed / "model.safetensors"), metadata={"format": "pt"})
    other = teacher_logits(replace(ctx, base_dir=changed, pixel_cache={}, row_cache={}),
                           ctx.pixels("train")[0][:IMAGES], ctx.rows("train")[:IMAGES])
    assert not other.reused and other.key["model_sha256"] != computed.key["model_sha256"]
    shift = other.logits.astype(np.float32) - computed.logits.astype(np.float32)
    assert np.allclose(shift, [3.0, -3.0], atol=0.2)


def test_another_resolution_is_a_new_cache_key(first_pass):  # type: ignore[no-untyped-def]
    from build_models.training.distill import teacher_cache_key

    ctx, computed = first_pass
    smaller = replace(ctx, preprocess=replace(ctx.preprocess, height=ctx.preprocess.height // 2,
                                              width=ctx.preprocess.width // 2))
    assert teacher_cache_key(smaller, ctx.rows("train")[:IMAGES]) != computed.key


def test_distill_config_reads_its_own_prefix():
    options = {"distill_epochs": 3, "distill_resolution": 112, "lite0_epochs": 1, "lite0_images": 500,
               "prune_recovery_epochs": 1}
    assert DistillConfig.from_options(options) == DistillConfig(epochs=3, resolution=112)
    assert DistillConfig.from_options(options, prefix="lite0_") == DistillConfig(epochs=1, images=500)
