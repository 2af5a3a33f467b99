"""Whether a base checkpoint was trained on the photos the build evaluates on.

What a checkpoint was fine-tuned on comes from its provenance (``base_model.KNOWN_CHECKPOINTS``) and from its
model card's ``datasets`` metadata (``README.md`` front matter, in a local checkpoint folder or on the hub). A
build's dataset names itself: a hub id, or, for a local copy, its folder and the hub ids its README names
(``../shared/datasets/cats_vs_dogs`` names ``microsoft/cats_vs_dogs``, whose photos it copies). Where the two
meet, every F1 the build measures rests on photos the checkpoint may have been trained on: not a held-out figure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HUB_ID = re.compile(r"`([A-Za-z0-9][\w.-]*/[\w.-]+)`")
FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
NOTE = ("the base checkpoint was trained on {datasets}, the photos this build's test and validation rows are "
        "drawn from: its F1, calibration and cascade threshold are not held-out figures")


def card_datasets(card_text: str) -> set[str]:
    """The ``datasets`` a model card's YAML front matter lists."""
    import yaml

    match = FRONT_MATTER.match(card_text)
    if not match:
        return set()
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError:
        return set()
    listed = meta.get("datasets") if isinstance(meta, dict) else None
    if isinstance(listed, str):
        return {listed}
    return {str(name) for name in listed or []}


def _hub_card(ref: str) -> str:
    try:
        from huggingface_hub import ModelCard

        return str(ModelCard.load(ref).content)
    except Exception as exc:  # noqa: BLE001 - no card (or no hub) means nothing is known from it
        log.info("no model card for %s (%s): its provenance alone says what it was trained on", ref, exc)
        return ""


def checkpoint_datasets(ref: str, provenance: Mapping[str, Any] | None, from_hub: bool = False) -> set[str]:
    """What the checkpoint ``ref`` was fine-tuned on, as far as its provenance and model card say."""
    names = {provenance["fine_tuned_on"]} if provenance and provenance.get("fine_tuned_on") else set()
    card = Path(ref) / "README.md"
    if card.is_file():
        names |= card_datasets(card.read_text(errors="replace"))
    elif from_hub:
        names |= card_datasets(_hub_card(ref))
    return names


def dataset_identities(dataset: str) -> set[str]:
    """The names a build's dataset goes by: its hub id, or a local folder and the hub ids its README names."""
    folder = Path(dataset)
    if not folder.is_dir():
        return {dataset}
    readme = folder / "README.md"
    named = set(HUB_ID.findall(readme.read_text(errors="replace"))) if readme.is_file() else set()
    return {str(folder.resolve())} | named


def evaluation_overlap(ref: str, provenance: Mapping[str, Any] | None, dataset: str,
                       from_hub: bool = False) -> dict[str, Any] | None:
    """The datasets the checkpoint was trained on that the build also evaluates on, with what that means;
    None when they share none."""
    shared = sorted(checkpoint_datasets(ref, provenance, from_hub) & dataset_identities(dataset))
    if not shared:
        return None
    return {"datasets": shared, "note": NOTE.format(datasets=", ".join(shared))}
