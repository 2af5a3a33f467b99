"""`tome` and `pruned-tome-int8`: token merging (ToMe) on the ViT, exported with a fixed ``r`` per block.

``r`` is chosen on a stratified validation sample: the largest candidate whose accuracy stays within a point of
the unmerged model's (``build_models.export.tome``). `tome` runs the merged plain ViT in OpenVINO fp32;
`pruned-tome-int8` stacks the three methods: `pruned-structured-40`, token merging, then int8 in the fastest
runtime that agrees with the merged fp32 model (ORT static/dynamic or OpenVINO NNCF).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from build_models.context import BuildContext, parameter_count
from build_models.export.formats import copy_model_metadata, onnx_to_openvino
from build_models.export.int8_choice import build_fastest_int8
from vitcore.backends.onnxruntime import ONNX_FILE
from vitcore.errors import BuildError

PRUNED = "pruned-structured-40"
CHECK_IMAGES = 200  # default of option tome_check_images: validation photos each candidate r is scored on


def build(ctx: BuildContext) -> dict[str, Any]:
    facts, fp32_onnx, network = _merged_fp32(ctx, ctx.base_dir)
    xml = onnx_to_openvino(fp32_onnx, ctx.out_dir)
    facts["export_max_abs_difference"] = _export_difference(ctx, network, xml)
    return {"parameters": ctx.base_parameter_count, "format": "OpenVINO IR fp32", **facts}


def build_pruned_int8(ctx: BuildContext) -> dict[str, Any]:
    pruned_dir = ctx.artifacts_root / PRUNED
    if not (pruned_dir / "config.json").exists():
        raise BuildError(f"{PRUNED} must be built first (python -m build_models --variants {PRUNED},pruned-tome-int8)")
    merged: dict[str, Any] = {}

    def export(ctx: BuildContext, source_dir: Path) -> tuple[Path, Path, str]:
        facts, fp32_onnx, _ = _merged_fp32(ctx, source_dir)
        merged.update(facts)
        return fp32_onnx, onnx_to_openvino(fp32_onnx, ctx.work_dir / "fp32_ov"), "torch.onnx.export (token merging)"

    facts = build_fastest_int8(ctx, pruned_dir, export=export)
    return {"parameters": parameter_count(pruned_dir), "stacked": [PRUNED, f"token merging r={merged['r']}",
                                                                   f"int8 ({facts['kept']})"],
            "format": f"int8 ({facts['kept']})", **merged, **facts}


def _merged_fp32(ctx: BuildContext, source_dir: Path) -> tuple[dict[str, Any], Path, Any]:
    """r chosen on validation, the merged network's MACs, and its fp32 ONNX export (in the work folder)."""
    import torch
    from transformers import AutoModelForImageClassification

    from build_models.export.formats import export_module_onnx
    from build_models.export.tome import TokenMergingViT, choose_r
    from build_models.measure.limit import macs_of_call

    ctx.threads.apply_torch()
    model = AutoModelForImageClassification.from_pretrained(str(source_dir)).eval()
    pixels, labels, _ = ctx.sampled("val", int(ctx.options.get("tome_check_images", CHECK_IMAGES)))
    choice = choose_r(model, pixels, labels, ctx.preprocess)
    network = TokenMergingViT(model, choice["r"])
    height, width = ctx.preprocess.height, ctx.preprocess.width
    fp32_onnx = export_module_onnx(network, height, width, ctx.work_dir / "fp32" / ONNX_FILE)
    copy_model_metadata(source_dir, fp32_onnx.parent)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    copy_model_metadata(source_dir, ctx.out_dir)
    macs = macs_of_call(lambda: network(torch.zeros(1, 3, height, width)))
    return {**choice, "macs": macs}, fp32_onnx, network


def _export_difference(ctx: BuildContext, network: Any, xml: Path) -> float:
    """Largest |logit difference| between the OpenVINO IR and the torch module on 8 validation photos."""
    import openvino as ov
    import torch

    from vitcore.preprocessing import normalize_uint8

    pixels = normalize_uint8(ctx.sampled("val", 8)[0], ctx.preprocess)
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    exported = np.asarray(compiled(pixels)[0])
    with torch.inference_mode():
        reference = network(torch.from_numpy(pixels)).numpy()
    return round(float(np.abs(exported - reference).max()), 6)
