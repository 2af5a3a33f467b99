"""Per-step training costs measured on this machine, before any work: the base model's real forward,
backward and AdamW step on synthetic batches, at each resolution the recipe trains at, in fp32 and bf16.

The build's training precision comes from these figures, not from CPU flags: bf16 autocast pays on
CPUs with AMX and on some with avx512_bf16 (measured here: 1.8x on an AMD EPYC without AMX), and is
several times slower on AVX2-only CPUs. A measured choice is remembered per CPU (``remembered``), so a
resumed build keeps the precision, and so the model, it started with.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from build_models.training.loop import TrainConfig
from vitcore.hardware import cpu_facts

BF16_MIN_SPEEDUP = 1.25  # bf16 only where it is clearly faster: a choice near 1.0 could flip between runs
WARMUP_STEPS, TIMED_STEPS = 2, 5


@dataclass(frozen=True)
class StepCosts:
    """Seconds per training step by precision and input size, and the base model's eval cost per image."""

    seconds: dict[str, dict[int, float]]  # {"fp32": {64: 0.19, 96: 0.38}, "bf16": {...}}
    forward_ms_per_image: float  # fp32, batch 64, inference: what a validation or test pass costs per image
    batch_size: int

    def faster_precision(self, size: int) -> str:
        fp32, bf16 = self.seconds["fp32"].get(size), self.seconds.get("bf16", {}).get(size)
        return "bf16" if fp32 and bf16 and fp32 / bf16 >= BF16_MIN_SPEEDUP else "fp32"

    def as_dict(self) -> dict[str, Any]:
        return {"seconds_per_step": {p: {str(k): round(v, 4) for k, v in by_size.items()}
                                     for p, by_size in self.seconds.items()},
                "forward_ms_per_image": round(self.forward_ms_per_image, 3), "batch_size": self.batch_size}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StepCosts:
        seconds = {p: {int(k): float(v) for k, v in by_size.items()} for p, by_size in raw["seconds_per_step"].items()}
        return cls(seconds, float(raw["forward_ms_per_image"]), int(raw["batch_size"]))


def training_sizes(config: TrainConfig, image_size: int) -> list[int]:
    """The input sizes a recipe trains at: the low-resolution phase's and the model's own."""
    return sorted({image_size, *([config.low_res_size] if config.low_res_fraction > 0 else [])})


def measure_step_costs(model: Any, config: TrainConfig, sizes: list[int], precisions: list[str],
                       feature_dims: tuple[int | None, int | None], image_size: int) -> StepCosts:
    """Time real optimisation steps of a deep copy of ``model`` (the model itself is left untouched) at each
    size and precision, and its inference cost per image at ``image_size``."""
    import copy

    import torch

    from build_models.training.loop import _Objective, _optimizer

    objective = _Objective(copy.deepcopy(model), feature_dims[0], feature_dims[1], config.tap_layer)
    optimizer = _optimizer(objective, config)
    generator = torch.Generator().manual_seed(0)
    seconds: dict[str, dict[int, float]] = {}
    for precision in precisions:
        for size in sizes:
            x = torch.randn(config.batch_size, 3, size, size, generator=generator)
            labels = torch.randint(0, 2, (config.batch_size,), generator=generator)
            seconds.setdefault(precision, {})[size] = _timed(
                lambda x=x, labels=labels, p=precision: _synthetic_step(objective, optimizer, config, x, labels, p))
    for size in sizes:  # every step also prepares its batch: decode-free, but crops, jitter and teacher targets
        batch = _batch_seconds(objective, config, size, image_size, feature_dims)
        for by_size in seconds.values():
            by_size[size] += batch
    objective.finish()
    return StepCosts(seconds, _forward_ms(objective.model, image_size), config.batch_size)


def _synthetic_step(objective: Any, optimizer: Any, config: TrainConfig, x: Any, labels: Any, precision: str) -> None:
    """One training step as ``train_classifier`` runs it, with random feature targets of the right shapes."""
    import torch

    from build_models.training.loop import _autocast, _batch_loss, _feature_loss

    grid = objective.grid_at(x.shape[-1])
    with _autocast("cpu", precision):
        logits, projected, tapped = objective(x)
    loss = _batch_loss(logits.float(), labels, None, config)
    if projected is not None:
        target = torch.randn(len(x), grid * grid, projected.shape[-1])
        tap_target = None if tapped is None else torch.randn(len(x), grid * grid, tapped.shape[-1])
        loss = loss + _feature_loss(projected, target, config, tapped, tap_target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _batch_seconds(objective: Any, config: TrainConfig, size: int, image_size: int,
                   feature_dims: tuple[int | None, int | None]) -> float:
    """``_student_batch`` on random pixels and, with a teacher, random cached maps of the real shapes."""
    import numpy as np
    import torch

    from build_models.context import TrainData
    from build_models.training.loop import _student_batch
    from build_models.training.teacher import DistillTargets
    from vitcore.preprocessing import PreprocessConfig

    rng = np.random.default_rng(0)
    count = 2 * config.batch_size
    data = TrainData(rng.integers(0, 255, (count, image_size, image_size, 3), dtype=np.uint8),
                     rng.integers(0, 2, count), np.zeros((0, image_size, image_size, 3), np.uint8),
                     np.zeros(0, np.int64), PreprocessConfig(image_size, image_size))
    if feature_dims[0] is not None:
        channels, tap = feature_dims[0], feature_dims[1] or 1
        data.targets = DistillTargets(
            rng.random((count, channels, 7, 7)).astype(np.float16), torch.zeros(2, channels), torch.zeros(2),
            torch.zeros(channels), torch.ones(channels), rng.random((count, tap, 7, 7)).astype(np.float16),
            torch.zeros(tap), torch.ones(tap))
    grid = objective.grid_at(None if size == image_size else size)
    resize = None if size == image_size else size
    return _timed(lambda: _student_batch(data, config, 0, 2, grid, resize, torch.device("cpu")))


def _timed(step: Any) -> float:
    """The median of TIMED_STEPS runs after WARMUP_STEPS: one slow step (a page fault, a neighbour) is not
    multiplied by thousands."""
    for _ in range(WARMUP_STEPS):
        step()
    times = []
    for _ in range(TIMED_STEPS):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return float(statistics.median(times))


def _forward_ms(model: Any, size: int) -> float:
    import torch

    batch = 64 if size <= 128 else 8  # a ViT-B/16 batch of 64 at 224 px takes seconds on 2 cores
    model.eval()
    x = torch.randn(batch, 3, size, size)
    with torch.inference_mode():
        seconds = _timed(lambda: model(pixel_values=x))
    model.train()
    return seconds * 1000 / batch


@dataclass(frozen=True)
class RememberedCosts:
    """Step costs measured once per artifacts folder and CPU: a resumed build reuses them, so it trains in
    the precision and for the steps it started with."""

    path: Path

    def load(self, key: dict[str, Any]) -> StepCosts | None:
        if not self.path.exists():
            return None
        raw = json.loads(self.path.read_text())
        return StepCosts.from_dict(raw["costs"]) if raw.get("key") == key else None

    def save(self, key: dict[str, Any], costs: StepCosts) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"key": key, "costs": costs.as_dict()}, indent=2))


def costs_key(model_spec: str, config: TrainConfig, sizes: list[int], threads: int) -> dict[str, Any]:
    """What a measurement is valid for: this CPU, the model, the batch, the sizes, the threads."""
    cpu = cpu_facts()
    return {"cpu": cpu["model"], "flags": cpu["flags"], "threads": threads, "model": model_spec,
            "batch_size": config.batch_size, "sizes": sizes}
