"""Post-training int8 quantization shared by the int8 variants: ONNX Runtime (static QDQ or dynamic)
and OpenVINO NNCF, plus the side-by-side check used to pick among candidates."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitcore.preprocessing import softmax
from vitcore.timing import summarize, time_calls

CALIBRATION_IMAGES = 128
CHOICE_IMAGES = 300  # validation images used to compare candidates with the fp32 model


@dataclass
class Candidate:
    name: str
    path: Path
    runtime: str  # "onnxruntime" or "openvino"
    agreement: float = 0.0  # top-1 agreement with the fp32 model on validation images
    max_prob_diff: float = 0.0
    latency_ms: float = 0.0

    def facts(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "agreement_with_fp32": round(self.agreement, 4),
                "max_prob_diff_vs_fp32": round(self.max_prob_diff, 4), "latency_ms": round(self.latency_ms, 2)}


def ort_static_int8(fp32_onnx: Path, out: Path, calibration: np.ndarray, activation: str, reduce_range: bool) -> Path:
    """Static QDQ quantization: per-channel int8 weights, activations u8 or s8, MinMax calibration."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"pixel_values": calibration[i : i + 1]} for i in range(len(calibration))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    prepared = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        reduce_range=reduce_range, weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8 if activation == "u8" else QuantType.QInt8,
        extra_options={"ActivationSymmetric": activation == "s8"},
    )
    prepared.unlink(missing_ok=True)
    return out


def ort_dynamic_int8(fp32_onnx: Path, out: Path, per_channel: bool = False) -> Path:
    """ONNX Runtime dynamic int8 with U8 weights (safe on AVX2 as on VNNI), one scale per tensor or per channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32_onnx), str(out), weight_type=QuantType.QUInt8, per_channel=per_channel)
    return out


def nncf_int8(fp32_xml: Path, out_xml: Path, calibration: np.ndarray, transformer: bool = True) -> Path:
    """NNCF post-training quantization of an OpenVINO IR (NNCF's transformer preset for ViTs, its default
    for CNNs)."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32_xml))
    dataset = nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))])
    preset = {"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}
    quantized = nncf.quantize(model, dataset, subset_size=len(calibration), **preset)
    ov.save_model(quantized, str(out_xml))
    return out_xml


def runner(candidate: Candidate, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """A logits function for a candidate file, in its runtime, with ``threads`` intra-op threads."""
    if candidate.runtime == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(candidate.path), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        return lambda x: np.asarray(request.infer({0: x})[compiled.output(0)]).copy()
    import onnxruntime as ort

    from vitcore.backends.onnxruntime import ort_session_options

    session = ort.InferenceSession(str(candidate.path), sess_options=ort_session_options(threads, 1),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: np.asarray(session.run(None, {name: x})[0])


def score_candidates(candidates: list[Candidate], reference: Callable[[np.ndarray], np.ndarray],
                     images: np.ndarray, threads: int, runs: int = 20) -> None:
    """Agreement with the fp32 reference (batch 1, as served) and single-image latency, side by side."""
    expected = softmax(np.concatenate([reference(images[i : i + 1]) for i in range(len(images))]))
    for candidate in candidates:
        run = runner(candidate, threads)
        probabilities = softmax(np.concatenate([run(images[i : i + 1]) for i in range(len(images))]))
        candidate.agreement = float((probabilities.argmax(1) == expected.argmax(1)).mean())
        candidate.max_prob_diff = float(np.abs(probabilities - expected).max())
        one = images[:1]
        candidate.latency_ms = summarize(time_calls(lambda: run(one), runs, 5), 1).mean_ms  # noqa: B023


def choose(candidates: list[Candidate], tolerance: float = 0.005) -> Candidate:
    """The fastest candidate among those whose agreement is within ``tolerance`` of the best."""
    best = max(c.agreement for c in candidates)
    eligible = [c for c in candidates if c.agreement >= best - tolerance]
    return min(eligible, key=lambda c: c.latency_ms)


def install(candidate: Candidate, out_dir: Path, file_name: str) -> None:
    shutil.copy2(candidate.path, out_dir / file_name)
    if candidate.runtime == "openvino":
        shutil.copy2(candidate.path.with_suffix(".bin"), (out_dir / file_name).with_suffix(".bin"))
