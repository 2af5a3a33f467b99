"""TensorFlow backend: a SavedModel with a ``serving_default`` signature."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from vitcore.backends.base import Predictor

log = logging.getLogger(__name__)

SAVED_MODEL_DIR = "saved_model"

class TensorFlowPredictor(Predictor):
    def _load(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        threads = self.threads.resolved()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads.tf_intra_op)
            tf.config.threading.set_inter_op_parallelism_threads(threads.tf_inter_op)
        except RuntimeError:
            log.warning("TensorFlow thread settings not applied (TF already initialised in this process); "
                        "it keeps intra %d / inter %d", tf.config.threading.get_intra_op_parallelism_threads(),
                        tf.config.threading.get_inter_op_parallelism_threads())
        self._tf = tf
        self.loaded_model = tf.saved_model.load(str(self.artifact_dir / SAVED_MODEL_DIR))
        self.serve = self.loaded_model.signatures["serving_default"]

    def applied_settings(self) -> dict[str, Any]:
        threading = self._tf.config.threading
        return {"tf_intra_op": threading.get_intra_op_parallelism_threads(),
                "tf_inter_op": threading.get_inter_op_parallelism_threads()}

    def forward(self, batch: np.ndarray) -> np.ndarray:
        outputs = self.serve(pixel_values=self._tf.constant(np.ascontiguousarray(batch, dtype=np.float32)))
        return np.asarray(outputs["logits"].numpy())
