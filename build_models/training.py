"""Fine-tuning / from-scratch training of an image classifier on pre-decoded uint8 pixels.

AdamW with linear warmup and cosine decay over a time budget (or an epoch count), label
smoothing, batch-level random-resized-crop / flip / brightness-contrast augmentation,
optional distillation from a teacher, checkpoint selection on the validation split, a tqdm
bar with loss and validation accuracy, and resumable state saved as safetensors + JSON.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from build_models.preprocessing import PreprocessConfig


@dataclass(frozen=True)
class TrainConfig:
    minutes: float | None = 25.0
    epochs: float | None = None
    batch_size: int = 64
    lr: float = 5e-4
    min_lr_ratio: float = 0.02
    warmup_steps: int = 200
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    crop_scale_min: float = 0.35
    color_jitter: float = 0.2
    distill_alpha: float = 0.5  # weight of the KL term when a teacher is given
    distill_temperature: float = 2.0
    eval_every_steps: int = 200
    seed: int = 0


@dataclass
class TrainResult:
    best_val_accuracy: float
    steps: int
    epochs: float
    minutes: float
    history: list[dict[str, float]] = field(default_factory=list)


Logits = Callable[[torch.Tensor], torch.Tensor]


def augment(batch: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random-resized-crop, horizontal flip and brightness/contrast on NCHW floats."""
    n = batch.shape[0]
    area = torch.empty(n).uniform_(config.crop_scale_min, 1.0, generator=generator)
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
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if config.color_jitter > 0:
        jitter = config.color_jitter
        brightness = torch.empty(n, 1, 1, 1).uniform_(-jitter, jitter, generator=generator)
        contrast = torch.empty(n, 1, 1, 1).uniform_(1 - jitter, 1 + jitter, generator=generator)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * contrast + mean + brightness
    return out


def to_model_input(pixels_hwc: np.ndarray, config: PreprocessConfig) -> torch.Tensor:
    """uint8 NHWC -> normalised float32 NCHW, identical to preprocessing.normalize_uint8."""
    x = torch.from_numpy(pixels_hwc).permute(0, 3, 1, 2).to(torch.float64) * config.rescale_factor
    x = x.to(torch.float32)
    mean = torch.tensor(config.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(config.image_std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


@torch.inference_mode()
def predict_logits(logits_fn: Logits, pixels: np.ndarray, pre: PreprocessConfig, batch: int = 256) -> np.ndarray:
    chunks = [logits_fn(to_model_input(pixels[i : i + batch], pre)) for i in range(0, len(pixels), batch)]
    return torch.cat(chunks).float().numpy()


def learning_rate(config: TrainConfig, step: int, progress: float) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


class _Checkpoint:
    """Resumable training state in one folder: weights and optimizer as safetensors, the rest JSON."""

    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.folder = folder
        self.fingerprint = fingerprint

    def save(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, self.folder / "last.safetensors")
        opt_state = optimizer.state_dict()
        tensors = {
            f"{idx}.{key}": value.reshape(-1) if value.dim() == 0 else value
            for idx, slots in opt_state["state"].items()
            for key, value in slots.items()
        }
        save_file(tensors, self.folder / "optimizer.safetensors")
        state = {**state, "fingerprint": self.fingerprint, "param_groups": opt_state["param_groups"]}
        tmp = self.folder / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        tmp.replace(self.folder / "state.json")

    def save_best(self, model: torch.nn.Module) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, self.folder / "best.safetensors")

    def load(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
        state_file = self.folder / "state.json"
        if not state_file.exists():
            return None
        state = json.loads(state_file.read_text())
        if state.get("fingerprint") != self.fingerprint:
            return None
        model.load_state_dict(load_file(self.folder / "last.safetensors"))
        flat = load_file(self.folder / "optimizer.safetensors")
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in flat.items():
            idx, key = name.split(".", 1)
            slots.setdefault(int(idx), {})[key] = value.reshape(()) if key == "step" else value
        optimizer.load_state_dict({"state": slots, "param_groups": state["param_groups"]})
        return state

    def load_best(self, model: torch.nn.Module) -> None:
        best = self.folder / "best.safetensors"
        if best.exists():
            model.load_state_dict(load_file(best))


def fingerprint(config: TrainConfig, extra: dict[str, Any]) -> str:
    return json.dumps({"train": asdict(config), **extra}, sort_keys=True, default=str)


@dataclass
class TrainData:
    train_pixels: np.ndarray
    train_labels: np.ndarray
    val_pixels: np.ndarray
    val_labels: np.ndarray
    preprocess: PreprocessConfig
    teacher: Logits | None = None  # distillation: called on each augmented batch, under no_grad


def _batch_loss(
    logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor | None, config: TrainConfig
) -> torch.Tensor:
    hard = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
    if teacher is None:
        return hard
    t = config.distill_temperature
    soft = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(teacher / t, -1), reduction="batchmean",
                    log_target=True)
    return (1 - config.distill_alpha) * hard + config.distill_alpha * soft * t * t


def _progress(config: TrainConfig, step: int, steps_per_epoch: int, elapsed_s: float) -> float:
    by_epochs = 0.0 if config.epochs is None else step / max(1.0, config.epochs * steps_per_epoch)
    by_time = 0.0 if config.minutes is None else elapsed_s / (config.minutes * 60)
    return max(by_epochs, by_time)


def _val_accuracy(model: torch.nn.Module, data: TrainData) -> float:
    model.eval()
    logits = predict_logits(lambda x: model(pixel_values=x).logits, data.val_pixels, data.preprocess)
    model.train()
    return float((logits.argmax(-1) == data.val_labels).mean())


def train_classifier(
    model: torch.nn.Module, data: TrainData, config: TrainConfig, work_dir: Path, extra_fingerprint: dict[str, Any]
) -> TrainResult:
    """Train ``model`` in place; on return it holds the best-on-validation weights."""
    if config.minutes is None and config.epochs is None:
        raise ValueError("a training budget needs minutes or epochs")
    torch.manual_seed(config.seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "position" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "position" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=(0.9, 0.999),
    )
    checkpoint = _Checkpoint(work_dir, fingerprint(config, extra_fingerprint))
    state = checkpoint.load(model, optimizer) or {"step": 0, "elapsed_s": 0.0, "best": -1.0, "history": []}
    steps_per_epoch = max(1, len(data.train_labels) // config.batch_size)
    bar = tqdm(desc="train", unit="step", initial=state["step"], dynamic_ncols=True, mininterval=2.0)
    model.train()
    started = time.perf_counter() - state["elapsed_s"]
    step, loss_ema = state["step"], None
    while _progress(config, step, steps_per_epoch, time.perf_counter() - started) < 1.0:
        epoch, offset = divmod(step, steps_per_epoch)
        order = np.random.default_rng([config.seed, epoch]).permutation(len(data.train_labels))
        rows = order[offset * config.batch_size : (offset + 1) * config.batch_size]
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)  # resumable
        x = augment(to_model_input(data.train_pixels[rows], data.preprocess), config, generator)
        labels = torch.from_numpy(data.train_labels[rows])
        teacher = None
        if data.teacher is not None:
            with torch.no_grad():
                teacher = data.teacher(x).float()
        progress = _progress(config, step, steps_per_epoch, time.perf_counter() - started)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step, progress)
        loss = _batch_loss(model(pixel_values=x).logits, labels, teacher, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        loss_ema = loss.item() if loss_ema is None else 0.98 * loss_ema + 0.02 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{loss_ema:.3f}", val_acc=f"{state['best']:.3f}", ep=f"{step / steps_per_epoch:.1f}",
                        refresh=False)
        done = _progress(config, step, steps_per_epoch, time.perf_counter() - started) >= 1.0
        if step % config.eval_every_steps == 0 or done:
            accuracy = _val_accuracy(model, data)
            elapsed = time.perf_counter() - started
            state["history"].append({"step": step, "minutes": elapsed / 60, "val_accuracy": accuracy, "loss": loss_ema})
            bar.write(f"step {step} ({elapsed / 60:.1f} min, epoch {step / steps_per_epoch:.2f}): "
                      f"loss {loss_ema:.4f} val_acc {accuracy:.4f}")
            if accuracy > state["best"]:
                state["best"] = accuracy
                checkpoint.save_best(model)
            state.update(step=step, elapsed_s=elapsed)
            checkpoint.save(model, optimizer, state)
    bar.close()
    checkpoint.load_best(model)
    model.eval()
    return TrainResult(
        best_val_accuracy=state["best"], steps=step, epochs=step / steps_per_epoch,
        minutes=(time.perf_counter() - started) / 60, history=state["history"],
    )

