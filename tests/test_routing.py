"""The router behind /predict/auto and degradation: its choice from measured figures and queue states."""

from __future__ import annotations

import pytest

from service.batching import QueueFullError
from service.routing import (
    Constraints,
    ImpossibleConstraintError,
    NoVariantWithinBudgetError,
    QueueState,
    VariantFigures,
    choose_variant,
    degradation_order,
    figures_from_manifest,
)

# name: (F1, end-to-end mean ms, model mean ms), the offline build's measured figures (docs/report-offline.json)
MEASURED = {"openvino-int8": (0.8953, 2.61, 1.39), "lite0-int8": (0.9559, 2.88, 1.52),
            "ort-onnx": (0.8968, 3.24, 2.27), "plain": (0.8968, 7.54, 6.14),
            "distilled-lite0": (0.9561, 12.49, 10.59), "distilled-resnet18": (0.7350, 16.88, 16.30)}
FIGURES = {name: VariantFigures(name, *values) for name, values in MEASURED.items()}
IDLE = {name: QueueState(0, 5.0) for name in FIGURES}


def test_without_constraints_the_most_accurate_variant_answers():
    choice = choose_variant(FIGURES, IDLE, Constraints())
    assert (choice.variant, choice.reason) == ("distilled-lite0", "most_accurate")
    assert choice.expected_ms == pytest.approx(12.49 + 5.0)


def test_a_budget_only_int8_variants_meet_routes_to_the_most_accurate_of_them():
    choice = choose_variant(FIGURES, IDLE, Constraints(max_latency_ms=8.0))  # ort-onnx idle: 8.24 ms
    assert (choice.variant, choice.reason) == ("lite0-int8", "most_accurate_within_budget")


def test_queue_depth_moves_the_choice_to_an_idle_variant_and_a_full_house_is_503():
    busy = {**IDLE, "lite0-int8": QueueState(2, 5.0)}  # 2.88 + 5 + 2 x 1.52 = 10.9 ms
    assert choose_variant(FIGURES, busy, Constraints(max_latency_ms=8.0)).variant == "openvino-int8"
    everyone_busy = {name: QueueState(3, 5.0) for name in FIGURES}
    with pytest.raises(NoVariantWithinBudgetError) as raised:
        choose_variant(FIGURES, everyone_busy, Constraints(max_latency_ms=8.0))
    assert isinstance(raised.value, QueueFullError) and raised.value.retry_after_s == 1


def test_prefer_speed_takes_the_fastest_variant_meeting_min_f1():
    choice = choose_variant(FIGURES, IDLE, Constraints(min_f1=0.9, prefer="speed"))
    assert (choice.variant, choice.reason) == ("lite0-int8", "fastest_meeting_min_f1")
    assert choose_variant(FIGURES, IDLE, Constraints(prefer="speed")).variant == "openvino-int8"


@pytest.mark.parametrize("constraints", [Constraints(min_f1=0.99), Constraints(max_latency_ms=5.0),
                                         Constraints(max_latency_ms=7.7, min_f1=0.95)])
def test_constraints_no_variant_could_meet_even_idle_are_refused(constraints):
    with pytest.raises(ImpossibleConstraintError):
        choose_variant(FIGURES, IDLE, constraints)


def test_degradation_goes_to_cheaper_variants_within_the_margin_most_accurate_first():
    order = degradation_order("distilled-lite0", FIGURES, margin=0.01)
    assert [f.name for f in order] == ["lite0-int8"]
    wider = degradation_order("distilled-lite0", FIGURES, margin=0.07)
    assert [f.name for f in wider] == ["lite0-int8", "ort-onnx", "plain", "openvino-int8"]
    assert degradation_order("openvino-int8", FIGURES, margin=1.0) == []  # nothing is cheaper


def test_figures_skip_an_f1_measured_on_other_images_than_the_builds_evaluation_set():
    manifest = {"evaluation": {"set_id": "aaaa"},
                "variants": {"plain": {"metrics": {"f1": 0.90, "evaluation_set": "aaaa"}},
                             "onnx": {"metrics": {"f1": 0.99, "evaluation_set": "bbbb"}},  # a figure on other images
                             "openvino": {"metrics": {"f1": 0.90}}},  # written before the set was recorded
                "latency": {"results": {name: {"end_to_end": {"mean_ms": 3.0}, "model": {"mean_ms": 2.0}}
                                        for name in ("plain", "onnx", "openvino")}}}
    assert sorted(figures_from_manifest(manifest, ["plain", "onnx", "openvino"])) == ["openvino", "plain"]


def test_figures_come_from_the_manifest_and_skip_variants_without_a_measured_f1():
    manifest = {"variants": {"plain": {"metrics": {"f1": 0.9}}, "onnx": {"metrics": {"f1": None}}},
                "latency": {"results": {name: {"end_to_end": {"mean_ms": 3.0}, "model": {"mean_ms": 2.0}}
                                        for name in ("plain", "onnx")}}}
    assert figures_from_manifest(manifest, ["plain", "onnx", "missing"]) == {
        "plain": VariantFigures("plain", 0.9, 3.0, 2.0)}
