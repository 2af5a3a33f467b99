"""OpenVINO backend: an IR compiled for the CPU, fp32 math unless the artifact says otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np

from vitcore.backends.base import Predictor

OPENVINO_XML = "openvino_model.xml"

class OpenVinoPredictor(Predictor):
    model_file = OPENVINO_XML
    inference_precision = "f32"  # fp32 math on CPUs with bf16 units too (OpenVINO's default there is bf16)

    def _load(self) -> None:
        import openvino as ov

        threads = self.threads.resolved()
        core = ov.Core()
        config = {
            "INFERENCE_NUM_THREADS": threads.openvino_threads,
            "PERFORMANCE_HINT": threads.openvino_hint,
            "INFERENCE_PRECISION_HINT": self.inference_precision,
        }
        if threads.openvino_streams:
            config["NUM_STREAMS"] = threads.openvino_streams
        self.compiled = core.compile_model(str(self.artifact_dir / self.model_file), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.streams = int(self.compiled.get_property("NUM_STREAMS"))
        self.queue = None
        if self.streams > 1:  # THROUGHPUT hint: a batch is split over the streams, run concurrently
            self.queue = ov.AsyncInferQueue(self.compiled, int(
                self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
            self.queue.set_callback(self._collect)
        self._chunks: dict[int, np.ndarray] = {}

    def applied_settings(self) -> dict[str, Any]:
        keys = ("INFERENCE_NUM_THREADS", "PERFORMANCE_HINT", "INFERENCE_PRECISION_HINT", "NUM_STREAMS")
        return {f"openvino_{key.lower()}": str(self.compiled.get_property(key)) for key in keys}

    def forward(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self.queue is None or len(batch) == 1:
            result = self.request.infer({0: batch})
            return np.asarray(result[self.compiled.output(0)]).copy()
        chunks = np.array_split(batch, min(len(batch), len(self.queue)))
        self._chunks.clear()
        for index, chunk in enumerate(chunks):
            self.queue.start_async({0: np.ascontiguousarray(chunk)}, userdata=index)
        self.queue.wait_all()
        return np.concatenate([self._chunks[i] for i in range(len(chunks))])

    def _collect(self, request: Any, index: int) -> None:
        self._chunks[index] = np.asarray(request.get_output_tensor(0).data).copy()


class OpenVinoBf16Predictor(OpenVinoPredictor):
    """The IR run with bf16 math where the CPU has it (AVX512_BF16 or AMX); elsewhere OpenVINO runs it in f32, as
    ``applied_settings`` reads back."""

    inference_precision = "bf16"
