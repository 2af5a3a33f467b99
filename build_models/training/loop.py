"""Fine-tuning / from-scratch training of an image classifier on pre-decoded uint8 pixels.

AdamW with linear warmup and cosine decay over an epoch count (or a time budget), label
smoothing, per-sample random-resized-crop / flip / brightness-contrast augmentation, and
distillation from a teacher: either one run on each augmented batch (``TrainData.teacher``) or
cached teacher feature maps read for the same crops (``TrainData.targets``: logits + per-token
features). Checkpoint selection on the validation split, a tqdm bar with loss and validation
accuracy, resumable state saved as safetensors + JSON, every step seeded by its index.

Over 300 lines: the loop, its objective and its resumable state share their internals; split, each part
would reach into the others.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from build_models.context import TrainData
from build_models.training.augment import color_jitter, random_thetas, warp
from vitcore.hardware import cpu_facts
from vitcore.preprocessing import PreprocessConfig

if TYPE_CHECKING:
    from build_models.training.teacher import CropTargets


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
    feature_weight: float = 0.0  # token distillation: cosine loss of projected patch tokens to the teacher's map
    pooled_weight: float = 0.0  # the same loss from the projected class token to the map's mean (what its head reads)
    tap_weight: float = 0.0  # the same loss from the patch tokens after layer tap_layer to the teacher's mid-level map
    tap_layer: int = 3  # 0-based index of the ViT encoder layer whose output is projected
    # Progressive resolution (ViT students): the first low_res_fraction of training runs at low_res_size px,
    # position embeddings interpolated, so its steps are cheaper (fewer tokens); the rest at the model's size.
    low_res_fraction: float = 0.0
    low_res_size: int = 64
    # "auto": bf16 autocast where matrix units run it natively (AMX on the CPU, bf16-capable CUDA), else fp32.
    # Weights, optimizer and evaluation stay fp32; only the forward/backward matmuls run in bf16.
    precision: str = "auto"
    eval_every_steps: int = 200
    seed: int = 0


@dataclass
class TrainResult:
    best_val_accuracy: float
    steps: int
    epochs: float
    minutes: float
    precision: str = "fp32"
    history: list[dict[str, float]] = field(default_factory=list)


Logits = Callable[[torch.Tensor], torch.Tensor]


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


PRECISIONS = ("auto", "fp32", "bf16")


def training_precision(requested: str, device: str) -> str:
    """The precision a training run applies: ``requested``, or for "auto" bf16 where it is native.

    On the CPU "native" means AMX (a flag, not a measurement: the build itself times both precisions first, in
    ``planning.step_costs``); other CPUs get fp32.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if "amx_bf16" in cpu_facts()["flags"] else "fp32"


def _autocast(device: str, precision: str) -> Any:
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


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



class _Objective(torch.nn.Module):
    """The student plus, for token distillation, a linear projection of its patch tokens.

    The projection reads the final (layer-normed) patch tokens of a ``transformers`` ViT; it is
    trained with the student and discarded afterwards, so the student stays a plain classifier.
    """

    def __init__(self, model: Any, feature_dim: int | None, tap_dim: int | None = None,
                 tap_layer: int = 0) -> None:  # a transformers image classifier
        super().__init__()
        self.model = model
        self.projection: torch.nn.Linear | None = None
        self.tap_projection: torch.nn.Linear | None = None
        self._tokens: list[torch.Tensor] = []
        self._tapped: list[torch.Tensor] = []
        self.hooks: list[Any] = []
        # Training only: eager attention is faster than SDPA here (343 vs 382 ms per ViT step in fp32) and,
        # under bf16 autocast, SDPA's CPU backward is slower than the matmuls it replaces (567 vs 38 ms).
        self._served_attention = getattr(model.config, "_attn_implementation", None)
        if self._served_attention not in (None, "eager") and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation("eager")
        if feature_dim is not None:
            self.projection = torch.nn.Linear(model.config.hidden_size, feature_dim)
            self.hooks.append(model.vit.layernorm.register_forward_hook(lambda _m, _i, out: self._tokens.append(out)))
        if tap_dim is not None:
            self.tap_projection = torch.nn.Linear(model.config.hidden_size, tap_dim)
            layer = model.vit.encoder.layer[tap_layer]
            self.hooks.append(layer.register_forward_hook(
                lambda _m, _i, out: self._tapped.append(out[0] if isinstance(out, tuple) else out)))

    @property
    def token_grid(self) -> int:
        """The ViT's patch grid; teacher maps are sampled on it (7x7 for models without patches)."""
        config = self.model.config
        patch = getattr(config, "patch_size", None)
        return int(config.image_size // patch) if patch else 7

    def grid_at(self, size: int | None) -> int:
        """The patch grid of a ``size``-pixel input (None: the model's own size)."""
        return self.token_grid if size is None else int(size // self.model.config.patch_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Logits, projected final tokens [B, 1 + patches, C] (class token first), projected tap patch tokens."""
        self._tokens.clear()
        self._tapped.clear()
        image_size = getattr(self.model.config, "image_size", None)  # ViTs; other students take any size
        resized = {"interpolate_pos_encoding": True} if image_size and x.shape[-1] != image_size else {}
        logits = self.model(pixel_values=x, **resized).logits
        projected = None if self.projection is None else self.projection(self._tokens[-1])
        tapped = None if self.tap_projection is None else self.tap_projection(self._tapped[-1][:, 1:])
        return logits, projected, tapped

    def finish(self) -> None:
        """Detach the training-only hooks and restore the attention implementation the model is served with."""
        for hook in self.hooks:
            hook.remove()
        if self._served_attention not in (None, "eager") and hasattr(self.model, "set_attn_implementation"):
            self.model.set_attn_implementation(self._served_attention)


def _batch_loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor | None,
                config: TrainConfig) -> torch.Tensor:
    hard = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
    if teacher is None:
        return hard
    t = config.distill_temperature
    soft = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(teacher / t, -1), reduction="batchmean",
                    log_target=True)
    return (1 - config.distill_alpha) * hard + config.distill_alpha * soft * t * t


def _cosine_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (1 - F.cosine_similarity(predicted.float(), target, dim=-1)).mean()


def _feature_loss(projected: torch.Tensor | None, target: torch.Tensor | None, config: TrainConfig,
                  tapped: torch.Tensor | None = None, tap_target: torch.Tensor | None = None) -> torch.Tensor:
    """Token loss on the patch tokens, plus the class token vs the mean target (``pooled_weight``), plus
    the tap layer's patch tokens vs the teacher's mid-level map (``tap_weight``)."""
    loss = torch.zeros(())
    if projected is not None and target is not None:
        loss = loss + config.feature_weight * _cosine_loss(projected[:, 1:], target)
        loss = loss + config.pooled_weight * _cosine_loss(projected[:, 0], target.mean(dim=1))
    if tapped is not None and tap_target is not None:
        loss = loss + config.tap_weight * _cosine_loss(tapped, tap_target)
    return loss


def _progress(config: TrainConfig, step: int, steps_per_epoch: int, elapsed_s: float) -> float:
    by_epochs = 0.0 if config.epochs is None else step / max(1.0, config.epochs * steps_per_epoch)
    by_time = 0.0 if config.minutes is None else elapsed_s / (config.minutes * 60)
    return max(by_epochs, by_time)


def _val_accuracy(model: torch.nn.Module, data: TrainData, device: str = "cpu") -> float:
    model.eval()
    logits = predict_logits(lambda x: model(pixel_values=x.to(device)).logits.cpu(), data.val_pixels,
                            data.preprocess)
    model.train()
    return float((logits.argmax(-1) == data.val_labels).mean())


def _optimizer(objective: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    named = list(objective.named_parameters())
    decay = [p for n, p in named if p.ndim >= 2 and "position" not in n]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and "position" not in n)]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=(0.9, 0.999),
    )


def _student_batch(data: TrainData, config: TrainConfig, step: int, steps_per_epoch: int, grid: int, size: int | None,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, CropTargets | None]:
    """Inputs, labels, teacher logits and teacher token targets of one step; seeded by the step (resumable)."""
    epoch, offset = divmod(step, steps_per_epoch)
    order = np.random.default_rng([config.seed, epoch]).permutation(len(data.train_labels))
    rows = order[offset * config.batch_size : (offset + 1) * config.batch_size]
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    x = to_model_input(data.train_pixels[rows], data.preprocess)
    labels = torch.from_numpy(data.train_labels[rows]).to(device)
    thetas = random_thetas(len(rows), config.crop_scale_min, generator)
    x = color_jitter(warp(x, thetas, size), config.color_jitter, generator).to(device)
    teacher_logits, crop_targets = None, None
    if data.targets is not None:
        crop_targets = data.targets.for_crops(rows, thetas, grid, with_tap=config.tap_weight > 0).to(device)
        teacher_logits = crop_targets.logits
    elif data.teacher_logits is not None:
        teacher_logits = torch.from_numpy(np.asarray(data.teacher_logits[rows], dtype=np.float32)).to(device)
    elif data.teacher is not None:
        with torch.no_grad(), _autocast(device.type, config.precision):
            teacher_logits = data.teacher(x).float()
    return x, labels, teacher_logits, crop_targets


def train_classifier(
    model: torch.nn.Module, data: TrainData, config: TrainConfig, work_dir: Path, extra_fingerprint: dict[str, Any],
    device: str = "cpu",
) -> TrainResult:
    """Train ``model`` in place; on return it holds the best-on-validation weights (on the CPU)."""
    if config.minutes is None and config.epochs is None:
        raise ValueError("a training budget needs minutes or epochs")
    config = replace(config, precision=training_precision(config.precision, device))
    torch.manual_seed(config.seed)
    if config.low_res_fraction > 0 and not hasattr(getattr(model, "config", None), "patch_size"):
        raise ValueError("progressive resolution needs a ViT student (patch embeddings)")
    feature_dim = tap_dim = None
    if data.targets is not None and (config.feature_weight > 0 or config.pooled_weight > 0):
        feature_dim = data.targets.channels
    if data.targets is not None and config.tap_weight > 0:
        tap_dim = data.targets.tap_channels
    objective = _Objective(model, feature_dim, tap_dim, config.tap_layer).to(device)
    optimizer = _optimizer(objective, config)
    checkpoint = _Checkpoint(work_dir, fingerprint(config, extra_fingerprint))
    state = checkpoint.load(objective, optimizer) or {"step": 0, "elapsed_s": 0.0, "best": -1.0, "history": []}
    steps_per_epoch = max(1, len(data.train_labels) // config.batch_size)
    total = None if config.epochs is None or config.minutes is not None else int(config.epochs * steps_per_epoch)
    bar = tqdm(desc="train", unit="step", total=total, initial=state["step"], dynamic_ncols=True, mininterval=2.0)
    objective.train()
    started = time.perf_counter() - state["elapsed_s"]
    step, loss_ema = state["step"], None
    first_step, resumed_at = step, time.perf_counter()
    while _progress(config, step, steps_per_epoch, time.perf_counter() - started) < 1.0:
        progress = _progress(config, step, steps_per_epoch, time.perf_counter() - started)
        size = config.low_res_size if progress < config.low_res_fraction else None
        x, labels, teacher_logits, crop_targets = _student_batch(
            data, config, step, steps_per_epoch, objective.grid_at(size), size, torch.device(device))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step, progress)
        with _autocast(device, config.precision):
            logits, projected, tapped = objective(x)
        loss = _batch_loss(logits.float(), labels, teacher_logits, config)
        if crop_targets is not None:
            loss = loss + _feature_loss(projected, crop_targets.tokens, config, tapped, crop_targets.tap_tokens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(objective.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        if step - first_step == ESTIMATE_AFTER_STEPS and total:
            _log_estimate(bar, step, total, time.perf_counter() - resumed_at)
        loss_ema = loss.item() if loss_ema is None else 0.98 * loss_ema + 0.02 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{loss_ema:.3f}", val_acc=f"{state['best']:.3f}", ep=f"{step / steps_per_epoch:.1f}",
                        refresh=False)
        done = _progress(config, step, steps_per_epoch, time.perf_counter() - started) >= 1.0
        if step % config.eval_every_steps == 0 or done:
            _evaluate_and_save(objective, data, state, step, steps_per_epoch, loss_ema or 0.0,
                               time.perf_counter() - started, checkpoint, optimizer, bar, device)
    bar.close()
    checkpoint.load_best(objective)
    objective.finish()
    model.to("cpu").eval()
    return TrainResult(
        best_val_accuracy=state["best"], steps=step, epochs=step / steps_per_epoch,
        minutes=(time.perf_counter() - started) / 60, precision=config.precision, history=state["history"],
    )


ESTIMATE_AFTER_STEPS = 5


def _log_estimate(bar: tqdm, step: int, total: int, seconds: float) -> None:
    """The remaining time from the steps measured so far (the first includes warm-up, so this is an upper bound)."""
    per_step = seconds / ESTIMATE_AFTER_STEPS
    bar.write(f"estimate: {total - step} more steps at {per_step:.2f} s/step measured = "
              f"{(total - step) * per_step / 60:.1f} min (without validation passes)")


def _evaluate_and_save(objective: _Objective, data: TrainData, state: dict[str, Any], step: int,
                       steps_per_epoch: int, loss: float, elapsed: float, checkpoint: _Checkpoint,
                       optimizer: torch.optim.Optimizer, bar: tqdm, device: str) -> None:
    accuracy = _val_accuracy(objective.model, data, device)
    state["history"].append({"step": step, "epoch": round(step / steps_per_epoch, 3), "minutes": elapsed / 60,
                             "val_accuracy": accuracy, "loss": loss})
    bar.write(f"step {step} ({elapsed / 60:.1f} min, epoch {step / steps_per_epoch:.2f}): "
              f"loss {loss:.4f} val_acc {accuracy:.4f}")
    if accuracy > state["best"]:
        state["best"] = accuracy
        checkpoint.save_best(objective)
    state.update(step=step, elapsed_s=elapsed)
    checkpoint.save(objective, optimizer, state)
