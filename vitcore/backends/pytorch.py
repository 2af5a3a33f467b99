"""PyTorch backends: transformers checkpoints (fp32, dynamic int8, sparse-stored) and the Lite0 student."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vitcore.backends.base import Predictor
from vitcore.threads import torch_applied_settings

DYNAMIC_QUANT_WEIGHTS = "model.qint8.safetensors"
LITE0_WEIGHTS = "model.safetensors"
SPARSE_WEIGHTS = "model.sparse.safetensors"

class TorchPredictor(Predictor):
    """A ``transformers`` PyTorch classifier saved with ``save_pretrained`` (safetensors)."""

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForImageClassification

        self.threads.apply_torch()
        self.model = AutoModelForImageClassification.from_pretrained(str(self.artifact_dir), use_safetensors=True)
        self.model.to(self.device).eval()
        self._torch = torch

    def applied_settings(self) -> dict[str, Any]:
        return torch_applied_settings(self.device)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            pixels = self._torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            logits = self.model(pixel_values=pixels).logits
        return logits.float().cpu().numpy()


def quantize(model: Any) -> Any:
    """Every nn.Linear to dynamic qint8 with one scale per output channel (per-tensor scales cost a 224 px
    ViT-S 0.7 F1 points on the test split; per channel keeps each row's range)."""
    import torch

    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear: qconfig}, dtype=torch.qint8)


def quantized_linears(model: Any) -> dict[str, Any]:
    import torch.ao.nn.quantized.dynamic as nnqd

    return {name: m for name, m in model.named_modules() if isinstance(m, nnqd.Linear)}


class DynamicQuantPredictor(Predictor):
    def _load(self) -> None:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModelForImageClassification

        self.threads.apply_torch()
        config = AutoConfig.from_pretrained(str(self.artifact_dir))
        with torch.device("meta"):
            skeleton = AutoModelForImageClassification.from_config(config)
        model = quantize(skeleton.to_empty(device="cpu").eval())
        tensors = load_file(str(self.artifact_dir / DYNAMIC_QUANT_WEIGHTS))
        for name, module in quantized_linears(model).items():
            qweight = torch._make_per_channel_quantized_tensor(
                tensors.pop(f"{name}.weight_int8"), tensors.pop(f"{name}.weight_scale"),
                tensors.pop(f"{name}.weight_zero_point"), 0)
            module.set_weight_bias(qweight, tensors.pop(f"{name}.bias", None))
        expected = {k for k, v in model.state_dict().items() if isinstance(v, torch.Tensor) and not v.is_quantized
                    and not k.startswith(tuple(quantized_linears(model)))}
        if expected != set(tensors):
            raise RuntimeError(f"weights do not match the model: {sorted(expected ^ set(tensors))[:5]}")
        with torch.no_grad():
            for key, value in tensors.items():
                owner, _, attr = key.rpartition(".")
                getattr(model.get_submodule(owner), attr).copy_(value)
        self.model = model.eval()
        self._torch = torch

    def applied_settings(self) -> dict[str, Any]:
        return torch_applied_settings()

    def forward(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self.model(pixel_values=self._torch.from_numpy(np.ascontiguousarray(batch))).logits.numpy()


def unpack_sparse(packed: dict[str, Any]) -> dict[str, Any]:
    import torch

    state = {k: v for k, v in packed.items() if "::" not in k}
    for key in {k.split("::")[0] for k in packed if "::" in k}:
        shape = packed[f"{key}::shape"].tolist()
        count = int(np.prod(shape))
        mask = torch.from_numpy(np.unpackbits(packed[f"{key}::mask"].numpy())[:count].astype(bool))
        dense = torch.zeros(count, dtype=packed[f"{key}::values"].dtype)
        dense[mask] = packed[f"{key}::values"]
        state[key] = dense.reshape(shape)
    return state


class SparsePredictor(TorchPredictor):
    def _load(self) -> None:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModelForImageClassification

        self.threads.apply_torch()
        config = AutoConfig.from_pretrained(str(self.artifact_dir))
        model = AutoModelForImageClassification.from_config(config)
        model.load_state_dict(unpack_sparse(load_file(str(self.artifact_dir / SPARSE_WEIGHTS))), strict=True)
        self.model = model.eval()
        self._torch = torch


class Lite0Predictor(TorchPredictor):
    """The EfficientNet-Lite0 state dict (safetensors) in eager PyTorch."""

    @staticmethod
    def state(artifact_dir: Path) -> dict[str, Any]:
        from safetensors.torch import load_file

        return load_file(str(Path(artifact_dir) / LITE0_WEIGHTS))

    def _load(self) -> None:
        import torch

        from vitcore.backends.lite0_net import EfficientNetLite0

        self.threads.apply_torch()
        state = self.state(self.artifact_dir)
        self.model = EfficientNetLite0(num_classes=int(state["_fc.weight"].shape[0]))
        self.model.load_state_dict(state, strict=True)
        self.model.to(self.device).eval()
        self._torch = torch

    def forward(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            pixels = self._torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            return self.model(pixels).float().cpu().numpy()  # type: ignore[no-any-return]
