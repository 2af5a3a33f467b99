"""The confidence cascade's rule, shared by the build (which chooses it) and the service (which runs it).

Each variant's probabilities are temperature-scaled by its fitted temperature; the first variant
answers when its top calibrated probability reaches the threshold, else the second one does.
"""

from __future__ import annotations

import numpy as np


def temperature_scaled(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of log(probabilities) / temperature (the same as softmax(logits / temperature))."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]


def escalates(calibrated: np.ndarray, threshold: float) -> np.ndarray:
    """Where the first variant's top calibrated probability is below the threshold (``[N, classes]`` -> ``[N]``)."""
    return calibrated.max(axis=-1) < threshold  # type: ignore[no-any-return]


def cascade_outcome(first: np.ndarray, then: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Predicted labels and the escalation mask: ``first``'s label where its top probability reaches
    ``threshold``, else ``then``'s. Both are calibrated probabilities of the same images."""
    escalated = escalates(first, threshold)
    return np.where(escalated, then.argmax(axis=1), first.argmax(axis=1)), escalated
