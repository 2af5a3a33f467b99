"""Calibration and the confidence cascade: chosen on the validation split, measured on the test split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from build_models.measure import evaluate as evaluation
from build_models.measure.calibration import TEMPERATURES, calibrate, expected_calibration_error
from build_models.measure.cascade import Scored, cascade_outcome, choose_cascade
from build_models.pipeline import cascade_step as cascade_build
from build_models.sources.dataset import Splits
from vitcore.cascade import temperature_scaled
from vitcore.manifest import Manifest


def test_ece_of_a_hand_counted_example():
    # Two images at top probability 0.9 (one right) and two at 0.6 (both right): bins 0.9 and 0.6, each half of
    # the images, errors |0.5 - 0.9| and |1.0 - 0.6|.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4]])
    labels = np.array([0, 1, 1, 0])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)


def right_share_at(confidence: float, right: int, wrong: int) -> tuple[np.ndarray, np.ndarray]:
    """``right + wrong`` images, every one given ``confidence`` for its predicted class; ``right`` of them right."""
    labels = np.array([0] * (right + wrong))
    predicted = np.array([0] * right + [1] * wrong)
    probabilities = np.full((len(labels), 2), 1.0 - confidence)
    probabilities[np.arange(len(labels)), predicted] = confidence
    return probabilities, labels


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def test_the_fitted_temperature_is_the_nll_optimum_derived_by_hand():
    # 80 of 100 right, each at 0.99. At temperature T every top probability is sigmoid(log(99) / T), and the
    # mean NLL -0.8 log q - 0.2 log(1 - q) is least at q = 0.8: log(99) / T = log(4), T = log(99) / log(4).
    probabilities, labels = right_share_at(0.99, 80, 20)
    optimum = np.log(99) / np.log(4)  # 3.3147
    calibration = calibrate(probabilities, labels)
    grid_step = np.log(TEMPERATURES[1] / TEMPERATURES[0])
    assert abs(np.log(calibration.fitted_temperature / optimum)) <= grid_step
    assert calibration.temperature == calibration.fitted_temperature  # it lowers the ECE, so it is kept
    assert calibration.ece == pytest.approx(0.99 - 0.8)
    assert calibration.ece_calibrated == pytest.approx(abs(0.8 - _sigmoid(np.log(99) / calibration.temperature)))
    assert calibration.ece_calibrated < 0.01
    assert np.array_equal(calibration.apply(probabilities).argmax(1), probabilities.argmax(1))
    assert temperature_scaled(probabilities, 1.0) == pytest.approx(probabilities)


def test_a_temperature_that_does_not_lower_the_ece_is_not_kept():
    # Already calibrated (0.8, 80% right): the optimum is T = 1, which the grid (symmetric in log T, an even
    # number of points) lacks; its nearest point raises the ECE from 0, so the temperature stays 1.
    probabilities, labels = right_share_at(0.8, 80, 20)
    calibration = calibrate(probabilities, labels)
    assert abs(np.log(calibration.fitted_temperature)) <= np.log(TEMPERATURES[1] / TEMPERATURES[0])
    assert calibration.fitted_temperature != 1.0
    assert calibration.temperature == 1.0 and calibration.ece_calibrated == calibration.ece
    assert calibration.ece == pytest.approx(0.0, abs=1e-12)
    assert calibration.apply(probabilities) is probabilities


def test_the_cascade_keeps_the_accurate_f1_for_a_fraction_of_its_latency():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 1000)
    truth = np.eye(2)[labels]
    accurate = 0.97 * truth + 0.03 * (1 - truth)  # always right
    # The cheap one is right and confident on 80% of the images and unsure (0.55, either way) on the rest.
    unsure = rng.random(1000) < 0.2
    guess = np.where(unsure & (rng.random(1000) < 0.5), 1 - labels, labels)
    cheap = np.where(unsure[:, None], 0.55 * np.eye(2)[guess] + 0.45 * (1 - np.eye(2)[guess]), accurate)
    candidates = [Scored("cheap", cheap, calibrate(cheap, labels), 2.0),
                  Scored("accurate", accurate, calibrate(accurate, labels), 10.0)]
    choice = choose_cascade(candidates, labels)
    assert choice is not None and (choice["first"], choice["then"]) == ("cheap", "accurate")
    assert choice["validation"]["target_met"] and choice["validation"]["f1"] >= 1.0 - 0.002
    assert choice["validation"]["escalation_rate"] == pytest.approx(unsure.mean(), abs=0.01)
    assert choice["validation"]["expected_mean_ms"] == pytest.approx(2.0 + unsure.mean() * 10.0, abs=0.1)
    predicted, escalated = cascade_outcome(candidates[0].calibrated, candidates[1].calibrated, choice["threshold"])
    assert np.array_equal(predicted, labels) and np.array_equal(escalated, unsure)


def test_the_cascade_is_chosen_without_reading_the_test_split(smoke_artifacts, dataset, tmp_path, monkeypatch):
    """Validation rows are the only images scored, and shuffling the stored test predictions changes nothing
    the build chose (only what it then measured)."""
    root = tmp_path / "artifacts"
    shutil.copytree(smoke_artifacts, root, ignore=shutil.ignore_patterns(".work"))
    split = json.loads((root / "split.json").read_text())
    splits = Splits(**{name: cascade_build._rows(ids) for name, ids in split.items()})
    decoded: list[np.ndarray] = []
    real_decode = evaluation.TestImages.decode

    def recording_decode(data, rows):  # type: ignore[no-untyped-def]
        decoded.append(np.asarray(rows))
        return real_decode(data, rows)

    monkeypatch.setattr(evaluation.TestImages, "decode", staticmethod(recording_decode))
    test_ids = json.loads((root / "eval" / "plain.json").read_text())["ids"]
    test = evaluation.TestImages(test_ids, dataset.labels[cascade_build._rows(test_ids)], [])
    options = {"cascade_val_images": 200}
    first = cascade_build.build_cascade(Manifest.load(root), dataset, splits, _threads(), options, test)
    assert first is not None
    assert len(decoded) == 1 and set(decoded[0]) <= set(splits.val) and not set(decoded[0]) & set(splits.test)
    for path in (root / "eval").glob("*.json"):  # scramble every stored test prediction
        stored = json.loads(path.read_text())
        stored["probabilities"] = list(reversed(stored["probabilities"]))
        path.write_text(json.dumps(stored))
    again = cascade_build.build_cascade(Manifest.load(root), dataset, splits, _threads(), options, test)
    assert again is not None
    chosen = ("first", "then", "threshold", "validation")
    assert {k: again[k] for k in chosen} == {k: first[k] for k in chosen}
    assert again["test"] != first["test"]


def _threads():  # type: ignore[no-untyped-def]
    from vitcore.threads import ThreadSettings

    return ThreadSettings()


def test_every_candidate_records_its_calibration(smoke_artifacts):
    manifest = json.loads((Path(smoke_artifacts) / "manifest.json").read_text())
    cascade = manifest["cascade"]
    for name in (cascade["first"], cascade["then"]):
        calibration = manifest["variants"][name]["calibration"]
        assert calibration["temperature"] == pytest.approx(cascade["temperatures"][name], abs=1e-4)
        assert calibration["validation_images"] == cascade["validation"]["images"]
    assert cascade["validation"]["images"] <= len(json.loads((Path(smoke_artifacts) / "split.json").read_text())["val"])
