"""Building an int8 artifact from any fp32 classifier folder, in whichever runtime is fastest.

Candidates: ONNX Runtime static QDQ U8S8 (reduce_range), ONNX Runtime dynamic U8 (per tensor and per
channel), and (where
asked) OpenVINO NNCF int8, all calibrated on the same train images; the fastest one that agrees
with the fp32 model on validation images is kept, and the manifest records all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from build_models.context import BuildContext
from build_models.export.formats import (
    ONNX_FILE,
    OPENVINO_XML,
    copy_model_metadata,
    export_onnx,
    export_onnx_eager,
    export_openvino,
    onnx_to_openvino,
)
from build_models.export.int8 import (
    CALIBRATION_IMAGES,
    CHOICE_IMAGES,
    Candidate,
    choose,
    install,
    nncf_int8,
    ort_dynamic_int8,
    ort_static_int8,
    runner,
    score_candidates,
)
from vitcore.preprocessing import PreprocessConfig

log = logging.getLogger(__name__)


def quantize_onnx_candidates(ctx: BuildContext, fp32_onnx: Any,
                             preprocess: PreprocessConfig | None = None) -> list[Candidate]:
    calibration = ctx.calibration_batch(CALIBRATION_IMAGES, preprocess)
    work = ctx.work_dir
    return [
        Candidate("static-qdq-u8s8-reduce-range",
                  ort_static_int8(fp32_onnx, work / "static_u8s8.onnx", calibration, "u8", reduce_range=True),
                  "onnxruntime"),
        Candidate("dynamic-u8", ort_dynamic_int8(fp32_onnx, work / "dynamic_u8.onnx"), "onnxruntime"),
        Candidate("dynamic-u8-per-channel",
                  ort_dynamic_int8(fp32_onnx, work / "dynamic_u8_pc.onnx", per_channel=True), "onnxruntime"),
    ]


def build_int8_from_onnx(ctx: BuildContext, fp32_onnx: Any, candidates: list[Candidate],
                         preprocess: PreprocessConfig | None = None) -> dict[str, Any]:
    threads = ctx.threads.resolved().ort_intra_op
    reference = runner(Candidate("fp32", fp32_onnx, "onnxruntime"), threads)
    choice_images = int(ctx.options.get("int8_choice_images", CHOICE_IMAGES))
    score_candidates(candidates, reference, ctx.validation_batch(choice_images, preprocess), threads)
    kept = choose(candidates)
    install(kept, ctx.out_dir, ONNX_FILE if kept.runtime == "onnxruntime" else OPENVINO_XML)
    return {"kept": kept.name, "runtime": kept.runtime, "candidates": {c.name: c.facts() for c in candidates},
            "calibration_images": CALIBRATION_IMAGES, "choice_images": choice_images}


def export_fp32(ctx: BuildContext, source_dir: Path) -> tuple[Path, Path, str]:
    """fp32 ONNX and OpenVINO IR of ``source_dir``: optimum's exporters, or the eager torch exporter
    when optimum cannot load the model (logged and recorded)."""
    try:
        return (export_onnx(source_dir, ctx.work_dir / "fp32"), export_openvino(source_dir, ctx.work_dir / "fp32_ov"),
                "optimum")
    except Exception as exc:  # noqa: BLE001 - the fallback is recorded in the manifest
        log.warning("optimum could not export %s (%s: %s); using torch.onnx.export on the eager model",
                    source_dir.name, type(exc).__name__, str(exc).splitlines()[0][:200])
        fp32_onnx = export_onnx_eager(source_dir, ctx.work_dir / "fp32_eager")
        return fp32_onnx, onnx_to_openvino(fp32_onnx, ctx.work_dir / "fp32_ov_eager"), "torch.onnx.export (eager)"


Exporter = Callable[[BuildContext, Path], tuple[Path, Path, str]]


def build_fastest_int8(ctx: BuildContext, source_dir: Path, export: Exporter | None = None,
                       transformer: bool = True) -> dict[str, Any]:
    """ORT static, ORT dynamic and OpenVINO NNCF int8 of ``source_dir``; the fastest agreeing one kept.
    ``export`` gives its fp32 ONNX and OpenVINO IR (default: ``export_fp32``, for transformers models)."""
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    fp32_onnx, fp32_xml, exporter = (export or export_fp32)(ctx, source_dir)
    preprocess = PreprocessConfig.from_dir(source_dir)  # a student's own size, not the base model's
    candidates = quantize_onnx_candidates(ctx, fp32_onnx, preprocess)
    calibration = ctx.calibration_batch(CALIBRATION_IMAGES, preprocess)
    candidates.append(Candidate("openvino-nncf", nncf_int8(fp32_xml, ctx.work_dir / "nncf" / OPENVINO_XML,
                                                           calibration, transformer), "openvino"))
    facts = build_int8_from_onnx(ctx, fp32_onnx, candidates, preprocess)
    copy_model_metadata(source_dir, ctx.out_dir)
    return {**facts, "fp32_exporter": exporter}


