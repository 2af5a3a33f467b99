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
        "f1_ci95": f1_interval(labels, predictions, n - 1) if n == 2 else None,
    }


BOOTSTRAP_RESAMPLES = 2000


def f1_interval(labels: np.ndarray, predictions: np.ndarray, positive: int = 1, seed: int = 0,
                resamples: int = BOOTSTRAP_RESAMPLES) -> list[float] | None:
    """95% percentile-bootstrap interval of the binary F1: the test images resampled with replacement
    ``resamples`` times (seeded, so a report is reproducible). None for an empty set."""
    if len(labels) == 0:
        return None
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(labels), size=(resamples, len(labels)))
    truth, guess = labels[index] == positive, predictions[index] == positive
    tp = (truth & guess).sum(1)
    wrong = (truth != guess).sum(1)  # false positives plus false negatives
    f1 = np.where(2 * tp + wrong > 0, 2 * tp / np.maximum(1, 2 * tp + wrong), 0.0)
    low, high = np.percentile(f1, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]
