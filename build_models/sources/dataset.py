"""Dataset loading (hub id or local parquet folder), the fixed stratified split, pixel caching."""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from build_models.sources.hub import hub_reachable
from vitcore.errors import DatasetUnavailableError, InvalidImageError
from vitcore.preprocessing import PreprocessConfig, decode_image, resize_to_uint8

log = logging.getLogger(__name__)

LOCAL_DATASET_HINT = "../shared/datasets/cats_vs_dogs"


@dataclass(frozen=True)
class SplitConfig:
    seed: int = 20240611
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    limit: int | None = None  # a seeded stratified sample of this many images before splitting (smoke)


# Recorded with the split: how every subset of a split is drawn (a seeded stratified sample, never its first rows).
# Entries built under another rule were trained or scored on other photos, so a change clears them.
SUBSET_RULE = "seeded stratified sample"


@dataclass(frozen=True)
class Splits:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass
class LabelledImages:
    """Raw JPEG bytes and labels of one dataset, addressed by row index."""

    source: str
    label_names: list[str]
    ids: list[str]
    labels: np.ndarray
    table: Any  # datasets.Dataset with the image column left undecoded

    def image_bytes(self, index: int) -> bytes:
        cell = self.table[int(index)]["image"]
        if cell.get("bytes") is not None:
            return bytes(cell["bytes"])
        return Path(cell["path"]).read_bytes()

    def __len__(self) -> int:
        return len(self.labels)


def load_labelled_images(source: str) -> LabelledImages:
    """Load ``source`` as a local parquet folder if it is a directory, else as a hub dataset id."""
    import datasets

    if Path(source).is_dir():
        table = datasets.load_dataset(str(Path(source).resolve()), split="train")
    elif _looks_like_path(source):
        raise DatasetUnavailableError(
            f"dataset folder {source!r} does not exist; pass --dataset <hub id or local folder>"
        )
    elif not hub_reachable():
        raise DatasetUnavailableError(
            f"the Hugging Face Hub is unreachable, so dataset {source!r} cannot be downloaded; "
            f"pass --dataset <local folder in the same parquet layout> (e.g. {LOCAL_DATASET_HINT})"
        )
    else:
        table = datasets.load_dataset(source, split="train")
    return _wrap(source, table)


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or source.count("/") > 1


def _wrap(source: str, table: Any) -> LabelledImages:
    import datasets

    label_column = "labels" if "labels" in table.column_names else "label"
    label_feature = table.features[label_column]
    names = list(getattr(label_feature, "names", None) or ["cat", "dog"])
    table = table.cast_column("image", datasets.Image(decode=False))
    paths = [cell.get("path") or "" for cell in table.select_columns(["image"])["image"]]
    ids = [f"{row}:{Path(path).name}" for row, path in enumerate(paths)]
    labels = np.asarray(table[label_column], dtype=np.int64)
    return LabelledImages(source=source, label_names=names, ids=ids, labels=labels, table=table)


def make_splits(labels: np.ndarray, config: SplitConfig) -> Splits:
    """Deterministic stratified split of row indices into train / val / test."""
    rng = np.random.default_rng(config.seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    kept = stratified_subset(np.arange(len(labels)), labels, config.limit, config.seed)  # ``limit``: a sample
    for cls in np.unique(labels):
        rows = kept[labels[kept] == cls]
        rows = rows[rng.permutation(len(rows))]
        n_test = int(round(len(rows) * config.test_fraction))
        n_val = int(round(len(rows) * config.val_fraction))
        parts["test"].append(rows[:n_test])
        parts["val"].append(rows[n_test : n_test + n_val])
        parts["train"].append(rows[n_test + n_val :])
    merged = {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}
    return Splits(train=merged["train"], val=merged["val"], test=merged["test"])


def stratified_subset(rows: np.ndarray, labels: np.ndarray, count: int | None, seed: int = 0) -> np.ndarray:
    """``count`` of ``rows`` with each label's share of them (largest remainder), drawn by a seeded permutation
    and kept in split order; all of them when ``count`` is None or not smaller. ``labels`` are the rows' labels.

    The split itself is sorted by dataset row, and a dataset may be ordered by label, so its first N rows
    are not a sample of it."""
    if count is None or count >= len(rows):
        return rows
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * count / len(rows)
    take = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - take), kind="stable")[: count - int(take.sum())]:
        take[index] += 1
    rng = np.random.default_rng([seed, count])
    chosen = [np.flatnonzero(labels == cls)[rng.permutation(n)[:k]] for cls, n, k in zip(classes, counts, take,
                                                                                           strict=True)]
    return rows[np.sort(np.concatenate(chosen))]


def sample_positions(labels: np.ndarray, count: int | None, seed: int = 0) -> np.ndarray:
    """Positions (0..len-1) of a ``stratified_subset`` of ``count`` items with these ``labels``, in order."""
    return stratified_subset(np.arange(len(labels)), labels, count, seed)


def take(array: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``array[positions]``; ``array`` itself when the positions are all of it in order (no copy of a split)."""
    if len(positions) == len(array) and np.array_equal(positions, np.arange(len(array))):
        return array
    return array[positions]


def split_hash(ids: list[str], rows: np.ndarray) -> str:
    digest = hashlib.sha256("\n".join(ids[int(r)] for r in rows).encode())
    return digest.hexdigest()


def split_record(data: LabelledImages, splits: Splits, config: SplitConfig) -> dict[str, Any]:
    """What the manifest records about the split: sizes, class counts and id hashes."""
    record: dict[str, Any] = {"seed": config.seed, "limit": config.limit, "subsets": SUBSET_RULE}
    for name, rows in splits.as_dict().items():
        record[name] = {
            "count": int(len(rows)),
            "class_counts": np.bincount(data.labels[rows], minlength=len(data.label_names)).tolist(),
            "sha256": split_hash(data.ids, rows),
        }
    return record


def write_split_ids(path: Path, data: LabelledImages, splits: Splits) -> None:
    ids = {name: [data.ids[int(r)] for r in rows] for name, rows in splits.as_dict().items()}
    path.write_text(json.dumps(ids))


def decode_pixels(
    data: LabelledImages, rows: np.ndarray, config: PreprocessConfig, cache_dir: Path | None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode and resize ``rows`` to NHWC uint8, exactly as serving does. Cached on disk.

    Returns the pixels and the rows that decoded (undecodable images are skipped and logged).
    """
    key = hashlib.sha256(
        f"{data.source}|{config.height}x{config.width}|{split_hash(data.ids, rows)}".encode()
    ).hexdigest()[:16]
    cache = None if cache_dir is None else Path(cache_dir) / f"pixels-{key}.npz"
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as stored:
            return stored["pixels"], stored["rows"]

    def decode(row: int) -> np.ndarray | None:
        try:
            return resize_to_uint8(decode_image(data.image_bytes(row)), config)
        except InvalidImageError as exc:
            log.warning("skipping row %d (%s): %s", row, data.ids[row], exc)
            return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        decoded = list(
            tqdm(pool.map(decode, rows.tolist(), chunksize=64), total=len(rows), desc="decode", leave=False,
                 mininterval=2.0)
        )
    kept = np.asarray([r for r, px in zip(rows, decoded, strict=True) if px is not None], dtype=np.int64)
    pixels = np.stack([px for px in decoded if px is not None])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, pixels=pixels, rows=kept)
    return pixels, kept
