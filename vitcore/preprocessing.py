"""Image preprocessing and postprocessing shared by every variant, training and the service.

The pixels equal those of the Hugging Face ``ViTImageProcessor`` (RGB conversion, bilinear
resize with PIL, rescale by 1/255 in float64 then float32, normalise with mean and std).
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vitcore.errors import ImageTooLargeError, InvalidImageError, UnsupportedImageFormatError

PREPROCESSOR_FILE = "preprocessor_config.json"
# Decompression-bomb guard: refuse images larger than this many pixels (checked from the header).
MAX_IMAGE_PIXELS = 64_000_000
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
# JPEGs larger than this are decoded at a reduced scale (at least DRAFT_SIZE on each side).
DRAFT_ABOVE_PIXELS = 4_000_000
DRAFT_SIZE = 1024


@dataclass(frozen=True)
class PreprocessConfig:
    height: int
    width: int
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    rescale_factor: float = 1 / 255

    @classmethod
    def from_dir(cls, model_dir: Path) -> PreprocessConfig:
        raw = json.loads((Path(model_dir) / PREPROCESSOR_FILE).read_text())
        size = raw.get("size", {})
        return cls(
            height=int(size.get("height", size.get("shortest_edge", 224))),
            width=int(size.get("width", size.get("shortest_edge", 224))),
            image_mean=tuple(raw.get("image_mean", (0.5, 0.5, 0.5))),  # type: ignore[arg-type]
            image_std=tuple(raw.get("image_std", (0.5, 0.5, 0.5))),  # type: ignore[arg-type]
            rescale_factor=float(raw.get("rescale_factor", 1 / 255)),
        )

    def save(self, model_dir: Path) -> None:
        """Write a ``ViTImageProcessor``-compatible preprocessor_config.json."""
        from transformers import ViTImageProcessor

        processor = ViTImageProcessor(
            size={"height": self.height, "width": self.width},
            image_mean=list(self.image_mean),
            image_std=list(self.image_std),
            rescale_factor=self.rescale_factor,
        )
        processor.save_pretrained(str(model_dir))


def decode_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode bytes into an RGB image; alpha is composited onto white.

    Only ``ACCEPTED_FORMATS`` are decoded (GIF: the first frame). The pixel count is checked from
    the header before any pixel is decoded, and JPEGs above ``DRAFT_ABOVE_PIXELS`` are decoded by
    libjpeg at a reduced scale (``draft``), which no model input here needs in full. Raises
    InvalidImageError, UnsupportedImageFormatError or ImageTooLargeError; messages never echo
    internal objects.
    """
    if not data:
        raise InvalidImageError("empty image body")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_header(image, max_pixels)
            if image.format == "JPEG" and image.width * image.height > DRAFT_ABOVE_PIXELS:
                image.draft("RGB", (DRAFT_SIZE, DRAFT_SIZE))
            image.load()
    except InvalidImageError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooLargeError(f"image refused as a decompression bomb (limit {max_pixels} pixels)") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError("not a decodable image: the bytes match no supported image format") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError("image could not be decoded: the data is truncated or corrupt") from exc
    return to_rgb(image)


def _check_header(image: Image.Image, max_pixels: int) -> None:
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedImageFormatError(
            f"image format {image.format} is not accepted; send one of {', '.join(ACCEPTED_FORMATS)}")
    if image.width * image.height > max_pixels:
        raise ImageTooLargeError(f"image too large: {image.width}x{image.height} pixels (limit {max_pixels})")


def to_rgb(image: Image.Image) -> Image.Image:
    """EXIF-orient and convert any PIL mode (RGBA, LA, P, L, I;16, CMYK...) to RGB."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        array = np.array(image, dtype=np.float32)  # one float32 copy, scaled in place
        peak = float(array.max()) or 1.0
        array *= np.float32(255.0 / peak)
        image = Image.fromarray(array.astype(np.uint8), mode="L")
    return image.convert("RGB")


def resize_to_uint8(image: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """Bilinear resize exactly as ViTImageProcessor does; returns HWC uint8."""
    resized = image.resize((config.width, config.height), resample=Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def normalize_uint8(batch_hwc: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """NHWC uint8 -> NCHW float32, rescaled and normalised like ViTImageProcessor."""
    scaled = (batch_hwc.astype(np.float64) * config.rescale_factor).astype(np.float32)
    mean = np.asarray(config.image_mean, dtype=np.float32)
    std = np.asarray(config.image_std, dtype=np.float32)
    normalized = (scaled - mean) / std
    return np.ascontiguousarray(normalized.transpose(0, 3, 1, 2), dtype=np.float32)


def preprocess(images: Sequence[Image.Image], config: PreprocessConfig) -> np.ndarray:
    """RGB PIL images -> NCHW float32 batch ready for any variant's ``forward``."""
    batch = np.stack([resize_to_uint8(to_rgb(image), config) for image in images])
    return normalize_uint8(batch, config)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted.astype(np.float64))
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)
