"""`tf-clustered`: TFViTForImageClassification from the plain PyTorch weights, weight-clustered with
tensorflow-model-optimization, clustering stripped, saved as a TensorFlow SavedModel.

tfmot's ``cluster_weights`` refuses subclassed Keras models, so each Dense layer is clustered on
its own: a copy of the layer is wrapped in a one-layer functional model, clustered with k-means++
centroids, stripped, and its clustered kernel written back into the ViT. TensorFlow is imported
only here, in a subprocess for the build (transformers must import with TF enabled there, while
the rest of the project runs with USE_TF=0), and inside ``load()`` for serving.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from build_models.context import BuildContext
from vitcore.backends.tensorflow import SAVED_MODEL_DIR
from vitcore.errors import BuildError

log = logging.getLogger(__name__)

CLUSTERS = 32
TF_ENV = {"USE_TF": "1", "USE_TORCH": "AUTO", "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def build(ctx: BuildContext) -> dict[str, Any]:
    command = [sys.executable, "-m", "build_models.variants.tf_clustered", "--base", str(ctx.base_dir),
               "--out", str(ctx.out_dir), "--clusters", str(CLUSTERS)]
    completed = subprocess.run(command, env={**os.environ, **TF_ENV}, capture_output=True, text=True)
    if completed.returncode != 0:
        raise BuildError(f"TensorFlow clustering failed: {completed.stderr.strip().splitlines()[-3:]}")
    facts = json.loads((ctx.out_dir / "clustering.json").read_text())
    ctx.preprocess.save(ctx.out_dir)
    gzip_mb = gzipped_size(ctx.out_dir / SAVED_MODEL_DIR) / 1e6
    plain_gzip_mb = gzipped_size(ctx.base_dir, suffix=".safetensors") / 1e6
    return {**facts, "parameters": ctx.base_parameter_count, "gzip_mb": round(gzip_mb, 3),
            "plain_safetensors_gzip_mb": round(plain_gzip_mb, 3), "size_note": f"gzip {gzip_mb:.2f}",
            "format": "TensorFlow SavedModel, clustered fp32 weights"}


def gzipped_size(folder: Path, suffix: str = "") -> int:
    return sum(len(gzip.compress(p.read_bytes(), compresslevel=9))
               for p in sorted(folder.rglob(f"*{suffix}")) if p.is_file())


def cluster_dense_kernels(model: Any, clusters: int) -> dict[str, Any]:
    """Cluster every Dense kernel of ``model`` in place with tfmot; returns what was done."""
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    init = tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS
    dense_layers = [layer for layer in model.submodules if isinstance(layer, keras.layers.Dense)]
    unique_counts = []
    for layer in dense_layers:
        kernel, *rest = layer.get_weights()
        copy = keras.layers.Dense(kernel.shape[1], use_bias=bool(rest))
        inputs = keras.Input(shape=(kernel.shape[0],))
        single = keras.Model(inputs, copy(inputs))
        copy.set_weights([kernel, *rest])
        clustered = tfmot.clustering.keras.cluster_weights(single, number_of_clusters=clusters,
                                                           cluster_centroids_init=init)
        stripped = tfmot.clustering.keras.strip_clustering(clustered)
        new_kernel = stripped.layers[-1].get_weights()[0]
        layer.set_weights([new_kernel, *rest])
        unique_counts.append(len(np.unique(new_kernel)))
        tf.keras.backend.clear_session() if hasattr(tf.keras.backend, "clear_session") else None
    return {"clusters_per_layer": clusters, "clustered_layers": len(dense_layers),
            "max_unique_values_per_kernel": int(max(unique_counts, default=0))}


def _build_in_subprocess(base: Path, out: Path, clusters: int) -> None:
    import tensorflow as tf
    from transformers import TFViTForImageClassification

    model = TFViTForImageClassification.from_pretrained(str(base), from_pt=True)
    config = model.config
    facts = cluster_dense_kernels(model, clusters)
    shape = [None, config.num_channels, config.image_size, config.image_size]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="pixel_values")])
    def serve(pixel_values: Any) -> dict[str, Any]:
        return {"logits": model(pixel_values=pixel_values, training=False).logits}

    # Only the serving signature and the weights: saving the Keras model itself traced every layer's call
    # (48 of 91 s on ViT-S/14 at 112 px, 2 cores) for functions nothing loads.
    exported = tf.Module()
    exported.weights = model.variables
    exported.serve = serve
    tf.saved_model.save(exported, str(out / SAVED_MODEL_DIR), signatures={"serving_default": serve})
    config.save_pretrained(str(out))
    (out / "clustering.json").write_text(json.dumps(facts))





if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--clusters", type=int, default=CLUSTERS)
    args = parser.parse_args()
    _build_in_subprocess(args.base, args.out, args.clusters)
