"""Expected calibration error and one temperature per variant, both on the validation split.

A variant's probabilities are calibrated when, among the images it gives a top probability near p,
a fraction near p is right. The cascade escalates on a top-probability threshold, so that threshold
only means something on calibrated probabilities. The temperature T divides the logits (here the
log-probabilities, which differ from the logits by a constant per image) and is fitted by minimising
the validation negative log-likelihood; it is kept only when it lowers the validation ECE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vitcore.cascade import temperature_scaled

ECE_BINS = 15
TEMPERATURES = np.exp(np.linspace(np.log(0.05), np.log(20.0), 400))



def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Equal-width bins of the top probability; the count-weighted mean |accuracy - confidence| over bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def _nll(probabilities: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    chosen = temperature_scaled(probabilities, temperature)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(chosen, 1e-12, 1)).mean())


@dataclass(frozen=True)
class Calibration:
    temperature: float  # 1.0 when fitting did not lower the validation ECE
    ece: float  # validation ECE of the raw probabilities
    ece_calibrated: float  # validation ECE at ``temperature``
    fitted_temperature: float
    images: int

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        return probabilities if self.temperature == 1.0 else temperature_scaled(probabilities, self.temperature)

    def as_dict(self) -> dict[str, Any]:
        return {"temperature": round(self.temperature, 4), "ece": round(self.ece, 4),
                "ece_calibrated": round(self.ece_calibrated, 4),
                "fitted_temperature": round(self.fitted_temperature, 4), "validation_images": self.images}


def calibrate(probabilities: np.ndarray, labels: np.ndarray) -> Calibration:
    """The NLL-minimising temperature on a fixed grid (deterministic), kept if it lowers the ECE."""
    fitted = float(min(TEMPERATURES, key=lambda t: _nll(probabilities, labels, float(t))))
    before = expected_calibration_error(probabilities, labels)
    after = expected_calibration_error(temperature_scaled(probabilities, fitted), labels)
    keep = after < before
    return Calibration(fitted if keep else 1.0, before, after if keep else before, fitted, len(labels))
