"""Augmented views as affine crops: random-resized-crop + horizontal flip, in normalised coordinates.

The same ``theta`` applied with ``warp`` to an image (or a teacher's feature map) at any
resolution selects the same region, so the student's 96 px crop and the teacher's 224 px map
describe exactly the same part of the photo.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_thetas(n: int, crop_scale_min: float, generator: torch.Generator) -> torch.Tensor:
    """[n, 2, 3] affine matrices: area in [crop_scale_min, 1], aspect in [3/4, 4/3], random flip."""
    area = torch.empty(n).uniform_(crop_scale_min, 1.0, generator=generator)
    log_ratio = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=generator)
    ratio = torch.exp(log_ratio)
    scale_x = torch.sqrt(area * ratio).clamp(max=1.0)
    scale_y = torch.sqrt(area / ratio).clamp(max=1.0)
    shift_x = (torch.rand(n, generator=generator) * 2 - 1) * (1 - scale_x)
    shift_y = (torch.rand(n, generator=generator) * 2 - 1) * (1 - scale_y)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale_x * flip
    theta[:, 0, 2] = shift_x
    theta[:, 1, 1] = scale_y
    theta[:, 1, 2] = shift_y
    return theta


def warp(batch: torch.Tensor, theta: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Apply per-sample affine crops to an NCHW float batch (bilinear, reflected borders), output
    ``size`` x ``size`` pixels (default: the input's size)."""
    shape = list(batch.shape) if size is None else [batch.shape[0], batch.shape[1], size, size]
    grid = F.affine_grid(theta, shape, align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color_jitter(batch: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Per-sample brightness shift and contrast scale around the image mean."""
    if strength <= 0:
        return batch
    n = batch.shape[0]
    brightness = torch.empty(n, 1, 1, 1).uniform_(-strength, strength, generator=generator)
    contrast = torch.empty(n, 1, 1, 1).uniform_(1 - strength, 1 + strength, generator=generator)
    mean = batch.mean(dim=(1, 2, 3), keepdim=True)
    return (batch - mean) * contrast + mean + brightness
