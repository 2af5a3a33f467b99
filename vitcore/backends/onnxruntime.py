"""ONNX Runtime backends: a plain InferenceSession, and optimum's ORTModel."""

from __future__ import annotations

from typing import Any

import numpy as np

from vitcore.backends.base import Predictor

ONNX_FILE = "model.onnx"

def ort_session_options(intra_op: int, inter_op: int):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op
    options.inter_op_num_threads = inter_op
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def ort_applied_settings(session: Any) -> dict[str, Any]:
    """An InferenceSession's thread settings as the session reports them (0 would mean ORT's default)."""
    options = session.get_session_options()
    return {"ort_intra_op": options.intra_op_num_threads, "ort_inter_op": options.inter_op_num_threads,
            "ort_execution_mode": str(options.execution_mode).rsplit(".", 1)[-1],
            "ort_providers": session.get_providers()}


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


class OrtModelPredictor(Predictor):
    def _load(self) -> None:
        from optimum.onnxruntime import ORTModelForImageClassification

        threads = self.threads.resolved()
        self.model = ORTModelForImageClassification.from_pretrained(
            str(self.artifact_dir), provider="CPUExecutionProvider",
            session_options=ort_session_options(threads.ort_intra_op, threads.ort_inter_op),
        )

    def applied_settings(self) -> dict[str, Any]:
        return ort_applied_settings(self.model.session if hasattr(self.model, "session") else self.model.model)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(pixel_values=np.ascontiguousarray(batch, dtype=np.float32)).logits)
