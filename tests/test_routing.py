"""The router behind /predict/auto and degradation: its choice from measured figures and queue states."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.batching import QueueFullError
from service.routing import (
    Constraints,
    ImpossibleConstraintError,
    NoVariantWithinBudgetError,
    QueueState,
    RoutingUnavailableError,
    VariantFigures,
    choose_variant,
    degradation_order,
    expected_ms,
    figures_from_manifest,
)
from vitcore.timing import CostCurve

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
        "plain": VariantFigures("plain", 0.9, 3.0, 2.0, chosen_on=0.9)}  # no selection set recorded: test F1


def test_the_router_chooses_on_validation_f1_and_reports_the_test_f1():
    """A variant that leads on the test split but not on validation is not chosen; the choice reports its test F1,
    and min_f1 applies to the F1 it chose on."""
    def scored(test: float, validation: float, set_id: str = "v1") -> dict:
        return {"metrics": {"f1": test}, "validation": {"f1": validation, "set_id": set_id}}

    manifest = {"selection": {"set_id": "v1", "images": 300, "sample_seed": 7},
                "variants": {"plain": scored(0.95, 0.90), "onnx-int8": scored(0.93, 0.92),
                             "openvino": scored(0.97, 0.99, set_id="other photos")},
                "latency": {"results": {name: {"end_to_end": {"mean_ms": 3.0}, "model": {"mean_ms": 2.0}}
                                        for name in ("plain", "onnx-int8", "openvino")}}}
    figures = figures_from_manifest(manifest, ["plain", "onnx-int8", "openvino"])
    assert sorted(figures) == ["onnx-int8", "plain"]  # openvino's validation score rests on other photos
    choice = choose_variant(figures, {}, Constraints())
    assert (choice.variant, choice.f1, choice.chosen_on) == ("onnx-int8", 0.93, 0.92)
    assert choice.as_dict()["measured_f1"] == 0.93 and choice.as_dict()["chosen_on_f1"] == 0.92
    assert choose_variant(figures, {}, Constraints(min_f1=0.91, prefer="speed")).variant == "onnx-int8"
    with pytest.raises(ImpossibleConstraintError, match="validation F1"):
        choose_variant(figures, {}, Constraints(min_f1=0.94))  # plain's test F1 of 0.95 is not what counts


def _with_decode(figures: VariantFigures, ms_at_12mp: float) -> VariantFigures:
    """Decode + preprocess: 1 ms for the 200x200 reference image, ``ms_at_12mp`` for a 12 MP one."""
    return replace(figures, decode=CostCurve(((40_000, 1.0), (12_000_000, ms_at_12mp))))


def test_the_expectation_follows_the_requests_image_size():
    sized = {name: _with_decode(f, 60.0) for name, f in FIGURES.items()}
    small, large = 200 * 200, 4000 * 3000
    assert expected_ms(sized["plain"], None, [small]) == pytest.approx(7.54)  # the reference image: as measured
    assert expected_ms(sized["plain"], None, [large]) == pytest.approx(7.54 - 1.0 + 60.0)
    assert choose_variant(sized, IDLE, Constraints(max_latency_ms=20.0), [small]).variant == "distilled-lite0"
    with pytest.raises(ImpossibleConstraintError, match="this request's image"):
        choose_variant(sized, IDLE, Constraints(max_latency_ms=20.0), [large])


def test_a_multi_image_request_gets_one_expectation_for_all_its_images():
    one = expected_ms(FIGURES["lite0-int8"], QueueState(0, 5.0), [0])
    four = expected_ms(FIGURES["lite0-int8"], QueueState(0, 5.0), [0] * 4)
    assert four == pytest.approx(one + 3 * 1.52)  # one more model pass per further image
    assert choose_variant(FIGURES, IDLE, Constraints(max_latency_ms=8.0), [0]).variant == "lite0-int8"
    assert choose_variant(FIGURES, IDLE, Constraints(max_latency_ms=12.0), [0] * 4).variant == "openvino-int8"


def test_no_figures_to_route_on_is_503_not_422():
    with pytest.raises(RoutingUnavailableError):
        choose_variant({}, {}, Constraints())
