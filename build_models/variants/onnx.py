"""`onnx`: the exported ONNX graph run by a plain onnxruntime.InferenceSession."""

from __future__ import annotations

from typing import Any

import numpy as np

from build_models.context import BuildContext
from build_models.exporters import ONNX_FILE, ONNX_OPSET, export_onnx, ort_applied_settings, ort_session_options
from build_models.predictor import Predictor
from build_models.registry import VariantSpec, register_variant


def build(ctx: BuildContext) -> dict[str, Any]:
    export_onnx(ctx.base_dir, ctx.out_dir)
    return {"parameters": ctx.base_parameter_count, "format": "ONNX fp32", "opset": ONNX_OPSET}


class OnnxSessionPredictor(Predictor):
    model_file = ONNX_FILE

    def _load(self) -> None:
        import onnxruntime as ort

        threads = self.threads.resolved()
        self.session = ort.InferenceSession(
            str(self.artifact_dir / self.model_file),
            sess_options=ort_session_options(threads.ort_intra_op, threads.ort_inter_op),
            providers=["CPUExecutionProvider"],
        )
        self.input_name = self.session.get_inputs()[0].name

    def applied_settings(self) -> dict[str, Any]:
        return ort_applied_settings(self.session)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        (logits,) = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[:1]
        return np.asarray(logits)


register_variant(VariantSpec(
    name="onnx",
    runtime="onnxruntime",
    summary="ONNX export run by a plain onnxruntime.InferenceSession.",
    build=build,
    predictor=OnnxSessionPredictor,
    requires=("onnxruntime",),
    build_requires=("optimum.exporters.onnx",),
    lossless=True,
    order=60,
))
