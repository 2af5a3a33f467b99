"""Fine-tune the last blocks of a pretrained ViT on cached inputs to those blocks.

The frozen prefix (patch embedding and the first ``12 - k`` encoder layers) runs once per image,
through OpenVINO in the fastest precision measured on this machine; its hidden states are cached
as float16 on disk (resumable, keyed by everything that produced them). Training then runs only
the last ``k`` layers, the final layernorm and the head, in PyTorch fp32: the last layer computes
the class token alone, which is all the head reads (``cls_only_layer``, equal to the full layer's
class-token output). The model is a plain ``ViTForImageClassification`` before and after.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from build_models.sources.dataset import SUBSET_RULE, sample_positions, take
from build_models.training.loop import TrainResult, _Checkpoint, to_model_input
from vitcore.hashing import json_digest
from vitcore.preprocessing import PreprocessConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartialTuneConfig:
    trainable_blocks: int = 2  # k: the last k encoder layers (+ final layernorm + head) are trained
    train_images: int | None = None  # a seeded stratified sample of N of the train split (None: all)
    val_images: int = 1000  # a seeded stratified sample of N of the validation split, for checkpoint selection
    epochs: float = 1.0
    batch_size: int = 32
    lr_blocks: float = 2e-5
    lr_head: float = 1e-3
    warmup_steps: int = 50
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    eval_every_steps: int = 200
    cache_precision: str = "auto"  # "auto" (the faster of f32/bf16, measured), "f32" or "bf16"
    seed: int = 0


def cls_only_layer(layer: Any, hidden: torch.Tensor) -> torch.Tensor:
    """A ``transformers`` ViTLayer's output for the class token alone: [B, 1, C]."""
    attention = layer.attention.attention
    heads, size = attention.num_attention_heads, attention.attention_head_size
    normed = layer.layernorm_before(hidden)
    batch, tokens, _ = normed.shape
    query = attention.query(normed[:, :1]).view(batch, 1, heads, size).transpose(1, 2)
    key = attention.key(normed).view(batch, tokens, heads, size).transpose(1, 2)
    value = attention.value(normed).view(batch, tokens, heads, size).transpose(1, 2)
    context = F.scaled_dot_product_attention(query, key, value).transpose(1, 2).reshape(batch, 1, heads * size)
    cls = hidden[:, :1] + layer.attention.output.dense(context)
    return cls + layer.output.dense(layer.intermediate(layer.layernorm_after(cls)))


class Tail(torch.nn.Module):
    """The trainable end of a ViT classifier: last k layers, final layernorm, head (the model's own modules)."""

    def __init__(self, model: Any, blocks: int) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(model.vit.encoder.layer[-blocks:])
        self.layernorm = model.vit.layernorm
        self.classifier = model.classifier

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            out = layer(hidden)
            hidden = out[0] if isinstance(out, tuple) else out
        cls = cls_only_layer(self.layers[-1], hidden)
        return self.classifier(self.layernorm(cls)[:, 0])


class _Prefix(torch.nn.Module):
    def __init__(self, model: Any, layers: int) -> None:
        super().__init__()
        self.embeddings = model.vit.embeddings
        self.layers = torch.nn.ModuleList(model.vit.encoder.layer[:layers])

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.embeddings(pixel_values)
        for layer in self.layers:
            out = layer(hidden)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden


def compiled_prefix(model: Any, layers: int, precision: str, threads: int, size: int) -> tuple[Any, str]:
    """The frozen prefix as an OpenVINO model compiled in ``precision`` ("auto": the faster one, measured)."""
    return compile_openvino(_Prefix(model, layers), model, precision, threads, size, "prefix cache")


def compile_openvino(module: torch.nn.Module, vit: Any, precision: str, threads: int, size: int,
                     what: str) -> tuple[Any, str]:
    """``module`` (which runs parts of the ViT ``vit``) compiled by OpenVINO in ``precision``; "auto" compiles
    f32 and bf16 and keeps bf16 only where it is measured at least 1.3x faster (AMX, not AVX-512 alone)."""
    import openvino as ov

    served = vit.config._attn_implementation
    vit.config._attn_implementation = "eager"  # traces to plain matmuls
    example = torch.zeros(8, 3, size, size)
    with torch.no_grad():
        graph = ov.convert_model(module.eval(), example_input=example)
    vit.config._attn_implementation = served
    core = ov.Core()
    compile_in = {p: core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": p, "INFERENCE_NUM_THREADS": threads})
                  for p in (("f32", "bf16") if precision == "auto" else (precision,))}
    if len(compile_in) == 1:
        return compile_in[precision], precision
    seconds = {p: _time_one(compiled, example.numpy()) for p, compiled in compile_in.items()}
    chosen = "bf16" if seconds["bf16"] * 1.3 < seconds["f32"] else "f32"
    log.info("%s precision: %s (measured %s)", what, chosen,
             ", ".join(f"{p} {s * 1000 / 8:.1f} ms/image" for p, s in seconds.items()))
    return compile_in[chosen], chosen


def _time_one(compiled: Any, batch: np.ndarray) -> float:
    request = compiled.create_infer_request()
    request.infer({0: batch})
    started = time.perf_counter()
    request.infer({0: batch})
    return time.perf_counter() - started


class StateCache:
    """Hidden states of one set of images, float16 [N, tokens, C] in a .npy file, filled in resumable chunks."""

    def __init__(self, folder: Path, key: dict[str, Any], shape: tuple[int, ...]) -> None:
        digest = json_digest(key)
        self.path = folder / f"states-{digest}.npy"
        self.progress_file = folder / f"states-{digest}.json"
        self.key, self.shape = key, shape
        folder.mkdir(parents=True, exist_ok=True)

    def done_rows(self) -> int:
        if not (self.path.exists() and self.progress_file.exists()):
            return 0
        return int(json.loads(self.progress_file.read_text())["rows_done"])

    def fill(self, pixels: np.ndarray, preprocess: PreprocessConfig, prefix: Any, chunk: int = 32) -> np.ndarray:
        start = self.done_rows()
        mode = "r+" if start else "w+"
        states = np.lib.format.open_memmap(self.path, mode=mode, dtype=np.float16, shape=self.shape)
        request = prefix.create_infer_request() if start < len(pixels) else None
        bar = tqdm(total=len(pixels), initial=start, desc=f"cache {self.key['role']} states", unit="img",
                   mininterval=2.0)
        for begin in range(start, len(pixels), chunk):
            batch = to_model_input(pixels[begin : begin + chunk], preprocess).numpy()
            states[begin : begin + len(batch)] = request.infer({0: batch})[0].astype(np.float16)  # type: ignore[union-attr]
            if (begin // chunk) % 20 == 19 or begin + chunk >= len(pixels):
                states.flush()
                self.progress_file.write_text(json.dumps({**self.key, "rows_done": begin + len(batch)}, default=str))
            bar.update(len(batch))
        bar.close()
        return np.load(self.path, mmap_mode="r")


@dataclass
class CachedStates:
    train: np.ndarray
    train_labels: np.ndarray
    val: np.ndarray
    val_labels: np.ndarray
    precision: str
    minutes: float


def cache_states(model: Any, config: PartialTuneConfig, pixels: dict[str, tuple[np.ndarray, np.ndarray]],
                 preprocess: PreprocessConfig, cache_dir: Path, key: dict[str, Any], threads: int) -> CachedStates:
    """Run the frozen prefix over the train and validation images once (or reuse the cache)."""
    started = time.perf_counter()
    layers = model.config.num_hidden_layers - config.trainable_blocks
    tokens = (preprocess.height // model.config.patch_size) ** 2 + 1
    limits = {"train": config.train_images, "val": config.val_images}
    wanted = {}
    for role, (pix, labels) in pixels.items():  # never the first N: a split may be ordered by label
        chosen = sample_positions(labels, limits[role], config.seed)
        wanted[role] = (take(pix, chosen), take(labels, chosen))
    prefix, precision = compiled_prefix(model, layers, config.cache_precision, threads, preprocess.height)
    out: dict[str, np.ndarray] = {}
    for role, (pix, _) in wanted.items():
        cache = StateCache(cache_dir, {**key, "role": role, "images": len(pix), "sample": SUBSET_RULE,
                                       "prefix_layers": layers, "precision": precision},
                           (len(pix), tokens, model.config.hidden_size))
        out[role] = cache.fill(pix, preprocess, prefix)
    return CachedStates(out["train"], wanted["train"][1], out["val"], wanted["val"][1], precision,
                        (time.perf_counter() - started) / 60)


def _lr_factor(config: PartialTuneConfig, step: int, total: int) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    return 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total))))


def _optimizer(tail: Tail, config: PartialTuneConfig) -> torch.optim.Optimizer:
    groups: list[dict[str, Any]] = []
    for params, lr in ((list(tail.layers.parameters()) + list(tail.layernorm.parameters()), config.lr_blocks),
                       (list(tail.classifier.parameters()), config.lr_head)):
        groups.append({"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay,
                       "lr": lr, "base_lr": lr})
        groups.append({"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0, "lr": lr, "base_lr": lr})
    return torch.optim.AdamW(groups)


@torch.inference_mode()
def _accuracy(tail: Tail, states: np.ndarray, labels: np.ndarray, batch: int = 64) -> float:
    tail.eval()
    logits = torch.cat([tail(torch.from_numpy(np.asarray(states[i : i + batch], dtype=np.float32)))
                        for i in range(0, len(states), batch)])
    tail.train()
    return float((logits.argmax(-1).numpy() == labels).mean())


def train_tail(model: Any, states: CachedStates, config: PartialTuneConfig, work_dir: Path,
               fingerprint: str) -> TrainResult:
    """Train the last blocks, layernorm and head of ``model`` in place on cached states; best-on-val weights kept."""
    torch.manual_seed(config.seed)
    tail = Tail(model, config.trainable_blocks).train()
    optimizer = _optimizer(tail, config)
    checkpoint = _Checkpoint(work_dir, fingerprint)
    state = checkpoint.load(tail, optimizer) or {"step": 0, "elapsed_s": 0.0, "best": -1.0, "history": []}
    steps_per_epoch = max(1, len(states.train) // config.batch_size)
    total = int(round(config.epochs * steps_per_epoch))
    started = time.perf_counter() - state["elapsed_s"]
    bar = tqdm(total=total, initial=state["step"], desc="fine-tune tail", unit="step", mininterval=2.0)
    step, loss_ema = state["step"], None
    while step < total:
        epoch, offset = divmod(step, steps_per_epoch)
        order = np.random.default_rng([config.seed, epoch]).permutation(len(states.train))
        rows = np.sort(order[offset * config.batch_size : (offset + 1) * config.batch_size])
        hidden = torch.from_numpy(np.asarray(states.train[rows], dtype=np.float32))
        labels = torch.from_numpy(states.train_labels[rows]).long()
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * _lr_factor(config, step, total)
        loss = F.cross_entropy(tail(hidden), labels, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tail.parameters(), 1.0)
        optimizer.step()
        step += 1
        loss_ema = loss.item() if loss_ema is None else 0.98 * loss_ema + 0.02 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{loss_ema:.3f}", val_acc=f"{state['best']:.3f}", refresh=False)
        if step % config.eval_every_steps == 0 or step == total:
            accuracy = _evaluate(tail, states, state, step, steps_per_epoch, loss_ema, time.perf_counter() - started)
            if accuracy > state["best"]:
                state["best"] = accuracy
                checkpoint.save_best(tail)
            checkpoint.save(tail, optimizer, state)
    bar.close()
    checkpoint.load_best(tail)
    model.eval()
    return TrainResult(best_val_accuracy=state["best"], steps=step, epochs=step / steps_per_epoch,
                       minutes=(time.perf_counter() - started) / 60, precision="fp32", history=state["history"])


def _evaluate(tail: Tail, states: CachedStates, state: dict[str, Any], step: int, steps_per_epoch: int,
              loss: float | None, elapsed: float) -> float:
    accuracy = _accuracy(tail, states.val, states.val_labels)
    state["history"].append({"step": step, "epoch": round(step / steps_per_epoch, 3), "minutes": elapsed / 60,
                             "val_accuracy": accuracy, "loss": loss or 0.0})
    state.update(step=step, elapsed_s=elapsed)
    tqdm.write(f"step {step} ({elapsed / 60:.1f} min, epoch {step / steps_per_epoch:.2f}): val_acc {accuracy:.4f}")
    return accuracy


def recipe_record(config: PartialTuneConfig, states: CachedStates) -> dict[str, Any]:
    return {"config": asdict(config), "cache_precision": states.precision, "cache_minutes": round(states.minutes, 2),
            "train_images": len(states.train), "val_images": len(states.val)}
