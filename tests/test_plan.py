"""The build plan printed before any work, the measured precision choice, and scoring on a subset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from build_models.measure.scores import classification_metrics, f1_interval
from build_models.pipeline.build import BuildRequest, run_build
from build_models.planning.plan import BUDGET_MINUTES, PlanInputs, make_plan
from build_models.planning.settle import settle_training
from build_models.planning.step_costs import RememberedCosts, StepCosts
from build_models.profiles import get_profile
from build_models.reporting.plan_rows import plan_rows
from build_models.sources.dataset import stratified_subset
from tests.conftest import DATASET
from vitcore.catalogue import list_variants
from vitcore.hardware import cpu_class

REFERENCE = {"forward_ms_per_image": 1.0, "image_size": 96, "teacher_ms_per_image": 10.0, "teacher_resolution": 224,
             "latency_s_per_variant_run": 0.1,
             "variants": {"onnx": {"build_s": 10.0, "eval_s": 20.0, "eval_images": 2000, "lossless": True},
                          "distilled-lite0": {"build_s": 100.0, "eval_s": 10.0, "eval_images": 2000,
                                              "options": {"lite0_images": 4000, "lite0_epochs": 1.0,
                                                          "lite0_resolution": 128}}}}
SPLIT = {"train": 6400, "val": 1000, "test": 2000}


def costs(fp32: float, bf16: float, forward_ms: float = 2.0) -> StepCosts:
    return StepCosts({"fp32": {64: fp32 / 2, 96: fp32}, "bf16": {64: bf16 / 2, 96: bf16}}, forward_ms, 64)


def inputs(profile_name: str = "offline", step: StepCosts | None = None, **changes) -> PlanInputs:  # type: ignore[no-untyped-def]
    profile = get_profile(profile_name)
    return PlanInputs(profile=profile, split_sizes=SPLIT, variants=["onnx", "distilled-lite0"],
                      costs=step or costs(0.4, 0.2), precision="fp32", image_size=96, **changes)


@pytest.mark.parametrize(("flags", "expected"), [
    (["avx2", "fma"], "AVX2"), (["avx2", "avx512f", "avx512_vnni"], "AVX-512"),
    (["avx2", "avx512f", "avx512_bf16"], "AVX-512 with bf16"), (["avx512f", "amx_bf16", "amx_tile"], "AMX")])
def test_cpu_class_names_the_budget_class(flags, expected):
    assert cpu_class(flags) == expected


def test_training_phase_is_steps_times_their_measured_cost():
    plan = make_plan(inputs(), "test machine", REFERENCE)
    training = next(p for p in plan.phases if p.name == "base training")
    # 20 epochs x 100 steps: 60% at 64 px (0.2 s) and 40% at 96 px (0.4 s), plus 4 validation passes of
    # 1,000 images at 2 ms.
    assert training.basis == "measured"
    assert training.seconds == pytest.approx(1200 * 0.2 + 800 * 0.4 + 4 * 1000 * 2.0 / 1000)
    assert "1200 steps at 64 px" in training.detail and "800 steps at 96 px" in training.detail


def test_other_phases_scale_the_reference_by_this_machine_and_by_the_work_asked():
    plan = make_plan(inputs(), "test machine", REFERENCE)
    by_name = {p.name: p for p in plan.phases}
    # This machine runs the base model at 2 ms/image against the reference's 1 ms: twice the build, and each
    # evaluated image costs the reference's 10 ms plus the 1 ms the forward pass is slower.
    assert by_name["onnx"].seconds == pytest.approx(2 * 10.0 + 2000 * (0.010 + 0.001))  # 42 s
    # The offline student: 4,000 images at 128 px, 1 epoch, as the reference: the same 100 s of training, plus
    # the ViT teacher's one pass over the 4,000 photos at the ViT's own 96 px, 2 ms each (the reference recorded
    # no pass of its own), plus 10 s of evaluation that does not scale with the ViT.
    assert by_name["distilled-lite0"].seconds == pytest.approx(100.0 + 8.0 + 10.0)
    assert by_name["teacher"].seconds == pytest.approx((6400 + 1000 + 2000 + 2 * 1000) * 10.0 / 1000)  # 114 s
    # 2 variants x 30 runs x (0.1 s + 3 x the 1 ms slower forward); the one cascade candidate (the student)
    # scores 1,000 validation images at 5 ms.
    assert by_name["latency table"].seconds == pytest.approx(2 * 30 * 0.103)
    assert by_name["cascade"].seconds == pytest.approx(1000 * 0.005)
    training = 1200 * 0.2 + 800 * 0.4 + 8.0
    assert plan.total_seconds == pytest.approx(114.0 + training + 42.0 + 118.0 + 6.18 + 5.0)


STUDENT_OPTIONS = {"distill_images": 800, "distill_resolution": 112, "distill_epochs": 1.0,
                   "lite0_images": 800, "lite0_resolution": 160, "lite0_epochs": 1.0}


def _students_plan(forward_ms: float | None, teacher_resolution: int) -> dict[str, float]:
    """Both students on the same 800 photos at different resolutions; the reference's builds took 60 s, 20 of
    them its ViT pass (0.2 s per photo at ``teacher_resolution``), with the same options, on a ViT at 1 ms."""
    reference = {**REFERENCE, "student_teacher_s_per_image": 0.2, "student_teacher_resolution": teacher_resolution,
                 "variants": {name: {"build_s": 60.0, "teacher_s": 20.0, "eval_s": 0.0, "eval_images": 100,
                                     "options": STUDENT_OPTIONS} for name in ("distilled-resnet18", "distilled-lite0")}}
    profile = get_profile("hub").with_overrides(options=STUDENT_OPTIONS)
    step = None if forward_ms is None else costs(0.4, 0.2, forward_ms=forward_ms)
    students = PlanInputs(profile=profile, split_sizes=SPLIT, variants=["distilled-resnet18", "distilled-lite0"],
                          costs=step, precision="fp32", image_size=224)
    return {p.name: p.seconds for p in make_plan(students, "m", reference).phases}


@pytest.mark.parametrize(("forward_ms", "teacher_resolution", "one_pass"), [
    (1.0, 224, 800 * 0.2),  # this machine runs the ViT as fast as the reference did
    (2.0, 224, 800 * 0.2 * 2),  # twice as slow
    (None, 112, 800 * 0.2 * 4),  # not measured here: the ViT's 224 px against the reference's 112 px
])
def test_the_teacher_pass_is_the_vit_at_its_own_resolution_once_per_set_of_photos(forward_ms, teacher_resolution,
                                                                                  one_pass):
    phases = _students_plan(forward_ms, teacher_resolution)
    # Neither student's resolution (112, 160 px) enters the pass; the second student reuses the first's.
    assert phases["distilled-resnet18"] == pytest.approx(40.0 + one_pass)
    assert phases["distilled-lite0"] == pytest.approx(40.0)


def test_built_phases_cost_nothing_and_a_long_plan_says_how_to_shorten_it():
    done = make_plan(inputs(base_built=True, variants_built=("onnx", "distilled-lite0")), "m", REFERENCE)
    assert [p.basis for p in done.phases[:3]] == ["done", "done", "done"]
    left_out = [name for name in list_variants() if name not in ("onnx", "distilled-lite0")]
    assert done.hints == [f"not in this build: {', '.join(left_out)} (`--variants all` builds every variant)"]
    slow = make_plan(inputs(step=costs(4.0, 8.0)), "m", REFERENCE)
    assert slow.total_seconds > BUDGET_MINUTES * 60
    text = slow.render()
    assert "hint:" in text and "--device cuda" in text and "base training" in slow.hints[-1]
    assert slow.hints[2] == "this CPU trains fastest in fp32: a bf16 step measured 2.0x an fp32 step at 96 px"


def test_precision_follows_measured_speed_and_fp32_machines_train_fewer_epochs():
    offline = get_profile("offline")
    fast_bf16 = settle_training(offline, costs(0.38, 0.22), 96, "cpu")
    assert (fast_bf16.train.precision, fast_bf16.train.epochs) == ("bf16", offline.train.epochs)
    slow_bf16 = settle_training(offline, costs(0.38, 6.4), 96, "cpu")  # AVX2: bf16 emulated, 17x slower
    assert (slow_bf16.train.precision, slow_bf16.train.epochs) == ("fp32", offline.fp32_train_epochs)
    marginal = settle_training(offline, costs(0.38, 0.34), 96, "cpu")  # within noise: keep fp32
    assert marginal.train.precision == "fp32"
    asked = offline.with_overrides(train_epochs=7.0)
    assert settle_training(asked, costs(0.38, 6.4), 96, "cpu").train.epochs == 7.0
    assert settle_training(offline, costs(0.38, 0.22), 96, "cuda") == offline


def test_measured_costs_are_remembered_per_cpu_so_a_resumed_build_keeps_its_precision(tmp_path):
    store = RememberedCosts(tmp_path / "costs.json")
    key = {"cpu": "X", "flags": ["avx2"], "sizes": [64, 96]}
    store.save(key, costs(0.4, 0.2))
    assert store.load(key) == costs(0.4, 0.2)
    assert store.load({**key, "cpu": "Y"}) is None


def test_stratified_subset_keeps_each_label_share_even_when_the_split_is_ordered_by_label():
    rows = np.arange(1000) + 5000
    labels = np.array([0] * 700 + [1] * 300)
    subset = stratified_subset(rows, labels, 101)
    chosen = labels[np.searchsorted(rows, subset)]
    assert np.bincount(chosen).tolist() == [71, 30]  # 70.7 and 30.3: the larger remainder gets the extra one
    assert np.all(np.diff(subset) > 0) and set(subset) <= set(rows)
    assert np.array_equal(subset, stratified_subset(rows, labels, 101))
    assert not np.array_equal(subset, stratified_subset(rows, labels, 101, seed=1))
    assert stratified_subset(rows, labels, None) is rows


def test_f1_interval_holds_the_estimate_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 4000)
    predictions = np.where(rng.random(4000) < 0.9, labels, 1 - labels)
    small = f1_interval(labels[:400], predictions[:400])
    large = f1_interval(labels, predictions)
    assert small is not None and large is not None
    f1 = classification_metrics(labels, predictions, ["cat", "dog"])["f1"]
    assert large[0] < f1 < large[1]
    # A bootstrap interval shrinks as 1/sqrt(n): ten times the images, a width sqrt(10) = 3.16 times smaller.
    assert (large[1] - large[0]) / (small[1] - small[0]) == pytest.approx(10 ** -0.5, abs=0.05)
    assert f1_interval(labels, labels) == [1.0, 1.0]


def test_plan_rows_put_each_planned_phase_beside_what_it_took():
    data = {"plan": {"phases": [{"name": "teacher", "minutes": 4.0, "basis": "estimated"},
                                {"name": "base training", "minutes": 15.0, "basis": "measured"},
                                {"name": "onnx", "minutes": 0.5, "basis": "estimated"},
                                {"name": "latency table", "minutes": 1.0, "basis": "estimated"}]},
            "base_model": {"teacher": {"minutes": 4.5}, "training": {"minutes": 14.2}},
            "variants": {"onnx": {"build_seconds": 6.0, "eval_seconds": 24.0}}, "latency": {"seconds": 90.0}}
    measured = {row["phase"]: row["measured_minutes"] for row in plan_rows(data)}
    assert measured == {"teacher": 4.5, "base training": 14.2, "onnx": 0.5, "latency table": 1.5}


def test_plan_is_printed_before_any_work_and_plan_only_builds_nothing(tmp_path: Path, capsys):
    profile = get_profile("smoke").with_overrides(dataset=str(DATASET))
    run_build(BuildRequest(profile=profile, artifacts_dir=tmp_path, plan_only=True))
    printed = capsys.readouterr().err
    assert printed.startswith("build plan: profile smoke on ")
    assert "base training" in printed and "measured" in printed and "\n  total " in printed
    assert "lite0-int8" in printed
    assert not (tmp_path / "base").exists() and not (tmp_path / "manifest.json").exists()
