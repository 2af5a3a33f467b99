"""The confidence cascade: a cheap variant answers first; below a confidence threshold the most accurate does.

Everything is chosen on the validation split: each candidate variant scores the validation images
once, gets its calibration (``calibration``), and the pair and threshold that are expected to be
fastest while keeping the validation F1 within ``F1_TOLERANCE`` of the most accurate variant's are
kept. The test split is read only afterwards, to measure what was chosen: its F1 from the stored test
predictions of both variants, its mean latency from the build's latency table and the measured
escalation rate (cheap end to end, plus the accurate one for every escalated image).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from build_models.measure.calibration import Calibration, calibrate
from build_models.measure.scores import classification_metrics
from vitcore.cascade import cascade_outcome

log = logging.getLogger(__name__)

F1_TOLERANCE = 0.002  # the cascade may lose at most 0.2 F1 points against the most accurate variant
THRESHOLDS = np.round(np.arange(0.50, 1.0, 0.0025), 4)


@dataclass(frozen=True)
class Scored:
    """One candidate on the validation images: its calibrated probabilities and measured mean latency."""

    name: str
    probabilities: np.ndarray
    calibration: Calibration
    e2e_ms: float

    @property
    def calibrated(self) -> np.ndarray:
        return self.calibration.apply(self.probabilities)



def _f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Binary F1 of label 1, as ``classification_metrics`` (without its bootstrap: this runs per threshold)."""
    true_positives = int(((predicted == 1) & (labels == 1)).sum())
    wrong = int((predicted != labels).sum())
    return 2 * true_positives / (2 * true_positives + wrong) if true_positives + wrong else 0.0


def choose_cascade(candidates: list[Scored], labels: np.ndarray) -> dict[str, Any] | None:
    """The (first, then, threshold) with the lowest expected latency whose validation F1 is within
    F1_TOLERANCE of the most accurate candidate's; None when no cheaper candidate qualifies."""
    best = max(candidates, key=lambda c: (_f1(labels, c.probabilities.argmax(1)), -c.e2e_ms))
    target = _f1(labels, best.probabilities.argmax(1)) - F1_TOLERANCE
    options = []
    for first in (c for c in candidates if c.e2e_ms < best.e2e_ms):
        for threshold in THRESHOLDS:
            predicted, escalated = cascade_outcome(first.calibrated, best.calibrated, float(threshold))
            f1 = _f1(labels, predicted)
            expected = first.e2e_ms + escalated.mean() * best.e2e_ms
            options.append((f1 >= target, expected if f1 >= target else -f1, first, float(threshold), f1,
                            float(escalated.mean()), expected))
    if not options:
        return None
    meets, _, first, threshold, f1, rate, expected = min(options, key=lambda o: (not o[0], o[1]))
    return {"first": first.name, "then": best.name, "threshold": threshold,
            "temperatures": {first.name: first.calibration.temperature, best.name: best.calibration.temperature},
            "validation": {"images": int(len(labels)), "f1": round(f1, 4), "escalation_rate": round(rate, 4),
                           "expected_mean_ms": round(expected, 3), "then_f1": round(target + F1_TOLERANCE, 4),
                           "target_met": bool(meets), "tolerance": F1_TOLERANCE}}


def measure_on_test(choice: dict[str, Any], test_labels: np.ndarray, first: np.ndarray, then: np.ndarray,
                    calibrations: dict[str, Calibration], e2e_ms: dict[str, float]) -> dict[str, Any]:
    """The chosen cascade on the test split: F1 (with its bootstrap interval), escalation rate, mean latency."""
    predicted, escalated = cascade_outcome(calibrations[choice["first"]].apply(first),
                                           calibrations[choice["then"]].apply(then), choice["threshold"])
    metrics = classification_metrics(test_labels, predicted, ["0", "1"])
    rate = float(escalated.mean())
    return {"images": int(len(test_labels)), "f1": round(metrics["f1"], 4), "f1_ci95": metrics["f1_ci95"],
            "accuracy": round(metrics["accuracy"], 4), "escalation_rate": round(rate, 4),
            "mean_ms": round(e2e_ms[choice["first"]] + rate * e2e_ms[choice["then"]], 3),
            "then_mean_ms": e2e_ms[choice["then"]],
            "latency_basis": "the build's end-to-end means: first for every image, then for escalated ones"}


def frontier(candidates: list[Scored], labels: np.ndarray, choice: dict[str, Any]) -> list[dict[str, float]]:
    """The chosen pair's validation F1 and expected latency at every threshold (the plot's cascade curve)."""
    by_name = {c.name: c for c in candidates}
    first, then = by_name[choice["first"]], by_name[choice["then"]]
    points = []
    for threshold in THRESHOLDS[::8]:
        predicted, escalated = cascade_outcome(first.calibrated, then.calibrated, float(threshold))
        points.append({"threshold": float(threshold), "f1": round(_f1(labels, predicted), 4),
                       "mean_ms": round(first.e2e_ms + escalated.mean() * then.e2e_ms, 3)})
    return points


def score_candidate(name: str, probabilities: np.ndarray, labels: np.ndarray, e2e_ms: float) -> Scored:
    return Scored(name, probabilities, calibrate(probabilities, labels), e2e_ms)
