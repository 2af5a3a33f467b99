"""Last-blocks fine-tuning on cached states: the cache, its key and resume, and the tail's training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from build_models.probe import parse_overrides
from build_models.reporting.readme import render_probes
from build_models.sources.base_model import BaseModelSource, load_base_model
from build_models.sources.dataset import LabelledImages, SplitConfig, decode_pixels, make_splits
from build_models.training.partial import PartialTuneConfig, StateCache, cache_states, compiled_prefix, train_tail

LABELS = ["cat", "dog"]


@pytest.fixture(scope="module")
def pixels(dataset: LabelledImages, tmp_path_factory: pytest.TempPathFactory) -> dict:
    loaded = load_base_model(BaseModelSource.parse("scratch:tiny"), LABELS, seed=0)
    splits = make_splits(dataset.labels, SplitConfig(limit=300, val_fraction=0.2, test_fraction=0.0))
    cache = tmp_path_factory.mktemp("pixels")
    out = {}
    for role, rows in (("train", splits.train), ("val", splits.val)):
        values, kept = decode_pixels(dataset, rows, loaded.preprocess, cache)
        out[role] = (values, dataset.labels[kept])
    return out


def _tiny() -> object:
    return load_base_model(BaseModelSource.parse("scratch:tiny"), LABELS, seed=0)


def test_cached_states_equal_the_models_own_hidden_states(pixels: dict, tmp_path: Path) -> None:
    loaded = _tiny()
    config = PartialTuneConfig(trainable_blocks=1, cache_precision="f32", val_images=20)
    states = cache_states(loaded.model, config, pixels, loaded.preprocess, tmp_path, {"test": 1}, 2)
    from build_models.training.loop import to_model_input

    with torch.inference_mode():
        out = loaded.model.vit(pixel_values=to_model_input(pixels["train"][0][:8], loaded.preprocess),
                               output_hidden_states=True)
    expected = out.hidden_states[1].numpy()  # the input to the last (second) layer
    np.testing.assert_allclose(states.train[:8].astype(np.float32), expected, atol=2e-2, rtol=1e-2)
    assert states.train.dtype == np.float16 and len(states.val) == 20 and states.precision == "f32"


def test_state_cache_resumes_and_is_keyed_by_its_inputs(pixels: dict, tmp_path: Path) -> None:
    loaded = _tiny()
    prefix, _ = compiled_prefix(loaded.model, 1, "f32", 2, loaded.preprocess.height)
    images = pixels["train"][0][:70]
    whole = StateCache(tmp_path / "a", {"role": "train", "k": 1}, (70, 17, 64)).fill(images, loaded.preprocess,
                                                                                      prefix, chunk=32)
    resumed = StateCache(tmp_path / "b", {"role": "train", "k": 1}, (70, 17, 64))
    resumed.fill(images[:32], loaded.preprocess, prefix, chunk=32)  # as if interrupted after 32 rows
    assert json.loads(resumed.progress_file.read_text())["rows_done"] == 32
    np.testing.assert_array_equal(resumed.fill(images, loaded.preprocess, prefix, chunk=32), whole)
    other = StateCache(tmp_path / "a", {"role": "train", "k": 2}, (70, 17, 64))
    assert other.path != StateCache(tmp_path / "a", {"role": "train", "k": 1}, (70, 17, 64)).path
    assert other.done_rows() == 0


def test_tail_training_learns_and_resumes_to_the_same_weights(pixels: dict, tmp_path: Path) -> None:
    config = PartialTuneConfig(trainable_blocks=2, epochs=6.0, batch_size=16, lr_blocks=1e-3, lr_head=1e-2,
                               warmup_steps=5, eval_every_steps=20, cache_precision="f32", val_images=60)
    first = _tiny()
    states = cache_states(first.model, config, pixels, first.preprocess, tmp_path / "states", {"test": 2}, 2)
    result = train_tail(first.model, states, config, tmp_path / "run", "fp")
    assert result.steps == int(round(6.0 * (len(states.train) // 16)))
    assert result.best_val_accuracy == max(h["val_accuracy"] for h in result.history)
    again = _tiny()
    repeat = train_tail(again.model, states, config, tmp_path / "run", "fp")  # finished: loads the best weights
    assert repeat.best_val_accuracy == result.best_val_accuracy
    for (name, a), (_, b) in zip(first.model.state_dict().items(), again.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_partial_probe_overrides_and_table() -> None:
    assert parse_overrides(["trainable_blocks=4", "train_images=3000"], partial=True) == {
        "trainable_blocks": 4, "train_images": 3000}
    with pytest.raises(SystemExit, match="PartialTuneConfig field"):
        parse_overrides(["lr=1e-3"], partial=True)
    entry = {"label": "k4", "kind": "partial", "recipe": {"trainable_blocks": 4, "lr_blocks": 4e-5, "lr_head": 5e-3},
             "train_images": 3000, "epochs": 2.0, "cache_precision": "bf16", "cache_minutes": 1.25, "minutes": 8.0,
             "val_images": 1000, "val_accuracy": 0.97, "best_val_accuracy": 0.971}
    table = render_probes([entry]).splitlines()
    assert table[2] == "| k4 | 4 | 3000 | 2.00 | 4e-05 / 0.005 | bf16 | 1.2 | 8.0 | 1000 | 0.9700 (0.9710) |"
