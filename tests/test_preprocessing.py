import io

import numpy as np
import pytest
from PIL import Image
from transformers import ViTImageProcessor

from vitcore.errors import InvalidImageError
from vitcore.preprocessing import PreprocessConfig, decode_image, preprocess, softmax


@pytest.mark.parametrize("size", [32, 64, 224])
def test_pixels_equal_vit_image_processor(dataset, size):
    config = PreprocessConfig(size, size)
    processor = ViTImageProcessor(size={"height": size, "width": size})
    images = [decode_image(dataset.image_bytes(i)) for i in range(0, 400, 50)]
    ours = preprocess(images, config)
    theirs = processor(images=images, return_tensors="np")["pixel_values"]
    assert ours.shape == theirs.shape == (len(images), 3, size, size)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "P", "I;16", "CMYK"])
def test_any_mode_becomes_rgb(mode):
    base = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8))
    image = base.convert(mode) if mode != "I;16" else base.convert("L").convert("I;16")
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    decoded = decode_image(_encode(image, fmt))
    assert decoded.mode == "RGB" and decoded.size == (30, 40)
    assert preprocess([decoded], PreprocessConfig(16, 16)).shape == (1, 3, 16, 16)


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    decoded = decode_image(_encode(image, "PNG"))
    assert np.asarray(decoded).min() == 255


@pytest.mark.parametrize("payload", [b"", b"not an image at all", b"\xff\xd8\xff\xe0" + b"\x00" * 64])
def test_bad_bytes_raise_invalid_image(payload):
    with pytest.raises(InvalidImageError):
        decode_image(payload)


def test_truncated_jpeg_raises_invalid_image(dataset):
    data = dataset.image_bytes(0)
    with pytest.raises(InvalidImageError):
        decode_image(data[: len(data) // 3])


def test_softmax_rows_sum_to_one():
    probabilities = softmax(np.array([[1000.0, 0.0], [-3.0, 2.0]], dtype=np.float32))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-6)
    assert probabilities[0, 0] == pytest.approx(1.0)
