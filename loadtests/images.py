"""Real photos for load tests: a folder of image files, or a parquet dataset folder (cats_vs_dogs layout)."""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def load_photos(source: str, count: int = 64) -> list[bytes]:
    """Up to ``count`` encoded photos from ``source``, cats and dogs interleaved when labels exist."""
    root = Path(source)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if files:
        return [p.read_bytes() for p in files[:count]]
    shards = sorted(root.rglob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"no images or parquet shards under {source}")
    import pyarrow.parquet as pq

    table = pq.read_table(shards[0], columns=["image", "labels"]).slice(0, count * 4).to_pylist()
    by_label: dict[int, list[bytes]] = {}
    for row in table:
        by_label.setdefault(int(row["labels"]), []).append(row["image"]["bytes"])
    interleaved = [photo for group in zip(*by_label.values(), strict=False) for photo in group]
    return interleaved[:count]


def upscaled(photos: list[bytes], size: str, quality: int = 90) -> list[bytes]:
    """Each photo resized to ``size`` ("4000x3000") and re-encoded as JPEG, in memory only (never written)."""
    import io

    from PIL import Image

    width, height = (int(n) for n in size.lower().split("x"))
    out = []
    for photo in photos:
        with Image.open(io.BytesIO(photo)) as image:
            large = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        large.save(buffer, format="JPEG", quality=quality)
        out.append(buffer.getvalue())
    return out
