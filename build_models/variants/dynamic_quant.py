"""`dynamic-quant`: torch.ao dynamic qint8 quantization of every nn.Linear, per output channel.

Stored as safetensors: int8 weights with their per-channel scales and zero points, everything else
fp32. Loading rebuilds the quantized module structure and writes the stored int8 weights into it,
so start-up never re-quantizes fp32 weights (and no pickle is read).
"""

from __future__ import annotations

from typing import Any

from build_models.context import BuildContext
from vitcore.backends.pytorch import DYNAMIC_QUANT_WEIGHTS, quantize, quantized_linears


def build(ctx: BuildContext) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(str(ctx.base_dir)).eval()
    quantized = quantize(model)
    tensors: dict[str, torch.Tensor] = {}
    linears = quantized_linears(quantized)
    for name, module in linears.items():
        weight, bias = module.weight(), module.bias()
        tensors[f"{name}.weight_int8"] = weight.int_repr().contiguous()
        tensors[f"{name}.weight_scale"] = weight.q_per_channel_scales().to(torch.float64).contiguous()
        tensors[f"{name}.weight_zero_point"] = weight.q_per_channel_zero_points().to(torch.int64).contiguous()
        if bias is not None:
            tensors[f"{name}.bias"] = bias.detach().contiguous()
    for key, value in quantized.state_dict().items():
        if isinstance(value, torch.Tensor) and not value.is_quantized and not key.startswith(tuple(linears)):
            tensors[key] = value.contiguous()
    save_file(tensors, str(ctx.out_dir / DYNAMIC_QUANT_WEIGHTS))
    model.config.save_pretrained(str(ctx.out_dir))
    ctx.preprocess.save(ctx.out_dir)
    return {"parameters": ctx.base_parameter_count,
            "format": "safetensors: int8 Linear weights (per-channel scales) + fp32 rest",
            "quantized_linears": len(linears)}
