"""Conversions shared by several variants: ONNX export (optimum) and OpenVINO IR export (optimum-intel)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from vitcore.backends.onnxruntime import ONNX_FILE
from vitcore.backends.openvino import OPENVINO_XML
from vitcore.preprocessing import PREPROCESSOR_FILE

ONNX_OPSET = 18


def copy_model_metadata(source: Path, target: Path) -> None:
    """config.json and preprocessor_config.json: what every Predictor and pipeline reads."""
    for name in ("config.json", PREPROCESSOR_FILE):
        if (source / name).exists():
            shutil.copy2(source / name, target / name)


def export_onnx(model_dir: Path, out_dir: Path) -> Path:
    """Export a transformers image classifier to ``out_dir/model.onnx`` with optimum (validated)."""
    from optimum.exporters.onnx import main_export

    main_export(str(model_dir), output=str(out_dir), task="image-classification", opset=ONNX_OPSET,
                device="cpu", do_validation=True, library_name="transformers")
    copy_model_metadata(model_dir, out_dir)
    return out_dir / ONNX_FILE


def export_openvino(model_dir: Path, out_dir: Path) -> Path:
    """Convert a transformers image classifier to OpenVINO IR (fp32 weights) with optimum-intel."""
    from optimum.intel import OVModelForImageClassification

    model = OVModelForImageClassification.from_pretrained(str(model_dir), export=True, compile=False,
                                                          load_in_8bit=False)
    model.save_pretrained(str(out_dir))
    copy_model_metadata(model_dir, out_dir)
    return out_dir / OPENVINO_XML


def LogitsOf(model: Any) -> Any:  # noqa: N802 - a factory standing for a module class (torch is imported lazily)
    """A ``transformers`` classifier as a module from pixel values to its logits tensor (for tracers)."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.model(pixel_values=pixel_values).logits

    return Logits()


def export_onnx_eager(model_dir: Path, out_dir: Path) -> Path:
    """``torch.onnx.export`` of the classifier loaded eagerly, for models optimum cannot export.

    optimum traces a model it first builds on the meta device; a ViT saved with pruned heads runs
    ``prune_heads`` (``torch.nonzero``) while it is built, which meta tensors refuse.
    """
    from transformers import AutoModelForImageClassification

    from vitcore.preprocessing import PreprocessConfig

    model = AutoModelForImageClassification.from_pretrained(str(model_dir)).eval()
    pre = PreprocessConfig.from_dir(model_dir)
    export_module_onnx(LogitsOf(model).eval(), pre.height, pre.width, out_dir / ONNX_FILE)
    copy_model_metadata(model_dir, out_dir)
    return out_dir / ONNX_FILE


def export_module_onnx(module: Any, height: int, width: int, out_file: Path) -> Path:
    """``torch.onnx.export`` (TorchScript, opset 17) of a module from pixel values to logits, batch dynamic."""
    import torch

    out_file.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(module, (torch.zeros(1, 3, height, width),), str(out_file), input_names=["pixel_values"],
                      output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}})
    return out_file


def onnx_to_openvino(onnx_file: Path, out_dir: Path) -> Path:
    """OpenVINO IR (fp32 weights) converted from an ONNX file by ``openvino.convert_model``."""
    import openvino as ov

    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(str(onnx_file)), str(out_dir / OPENVINO_XML), compress_to_fp16=False)
    copy_model_metadata(onnx_file.parent, out_dir)
    return out_dir / OPENVINO_XML



