"""Classification metrics on the test split (no scikit-learn needed)."""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Accuracy, binary F1 (positive class = last label, as sklearn's default), macro F1, confusion matrix."""
    n = len(label_names)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    per_class_f1 = []
    for cls in range(n):
        tp = confusion[cls, cls]
        fp = confusion[:, cls].sum() - tp
        fn = confusion[cls, :].sum() - tp
        per_class_f1.append(float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0)
    return {
        "f1": per_class_f1[-1] if n == 2 else float(np.mean(per_class_f1)),
        "f1_macro": float(np.mean(per_class_f1)),
        "accuracy": float((labels == predictions).mean()),
        "confusion_matrix": confusion.tolist(),
        "confusion_matrix_axes": "rows = true label, columns = predicted label, order = label_names",
        "count": int(len(labels)),
    }
