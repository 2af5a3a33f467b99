"""The machine's GEMM peaks per precision run in the precision they name (issue 30's limit, measured here)."""

from __future__ import annotations

import pytest

from build_models.measure.peak import bf16_unavailable, machine_peaks, peak_gemm


@pytest.mark.parametrize(("precision", "runs_as"), [("fp32", {"f32"}), ("int8", {"u8", "i8"})])
def test_each_gemm_runs_in_its_own_precision(precision, runs_as):
    measured = peak_gemm(precision, size=256, runs=3, threads=1)
    assert measured["runtime_precision"] and set(measured["runtime_precision"]) <= runs_as, measured
    assert measured["gemm"] == "256x256x256" and measured["gmac_per_s"] > 0


def test_bf16_is_measured_only_where_the_cpu_has_it():
    assert bf16_unavailable({"avx2", "fma"}).startswith("not applicable")
    assert bf16_unavailable({"avx512f", "avx512_bf16"}) is None and bf16_unavailable({"amx_bf16"}) is None
    peaks = machine_peaks({"avx2"}, size=128)
    assert peaks["bf16"] == {"precision": "bf16", "applicable": False, "reason": bf16_unavailable({"avx2"})}
    assert peaks["fp32"]["applicable"] and peaks["int8"]["applicable"]


def test_the_peaks_are_ordered_where_the_cpu_has_fast_int8_and_bf16():
    """int8 >= bf16 >= fp32 where the CPU runs int8 with VNNI or AMX (and bf16 natively); on AVX2 alone int8 has
    no faster instruction (docs/peaks-avx2.json: int8 46.3 GMAC/s against fp32 79.1), so there is no order to check."""
    from vitcore.hardware import cpu_facts

    flags = set(cpu_facts()["flags"])
    if not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        pytest.skip(f"no VNNI or AMX int8 on this CPU ({' '.join(sorted(flags))}): int8 is not expected to win")
    peaks = machine_peaks(flags, size=1024)
    ordered = [peaks[p]["gmac_per_s"] for p in ("int8", "bf16", "fp32") if peaks[p]["applicable"]]
    assert ordered == sorted(ordered, reverse=True), peaks


def test_every_variant_counts_the_macs_of_a_torch_network_in_the_catalogue():
    from vitcore.backends.pytorch import TorchPredictor
    from vitcore.catalogue import get_variant, list_variants

    for name in list_variants():
        if get_variant(name).macs_recorded:  # exported-only networks (token merging): the build counts them
            continue
        source = get_variant(get_variant(name).macs_source)
        assert issubclass(source.predictor, TorchPredictor), (name, source.name)
    assert get_variant("pruned-int8").macs_source == "pruned-structured-40"
    assert get_variant("lite0-int8").macs_source == "distilled-lite0" and get_variant("onnx").macs_source == "plain"
    assert {n for n in list_variants() if get_variant(n).precision == "int8"} == {
        "dynamic-quant", "pruned-int8", "pruned-tome-int8", "onnx-int8", "openvino-int8", "resnet18-int8",
        "lite0-int8"}


def test_macs_are_counted_on_the_network_each_variant_runs(smoke_artifacts):
    """Plain's count equals the analytic ViT formula exactly; copies and int8 builds take their source's."""
    from transformers import AutoConfig

    from build_models.measure.flops import vit_flops
    from build_models.measure.limit import limit_record, variant_macs
    from vitcore.loading import load_predictors
    from vitcore.manifest import Manifest
    from vitcore.threads import ThreadSettings

    names = ["plain", "onnx-int8", "pruned-structured-40", "pruned-int8", "distilled-lite0", "lite0-int8"]
    predictors = load_predictors(Manifest.load(smoke_artifacts), names, ThreadSettings.for_every_runtime(1))
    macs = variant_macs(predictors)
    assert macs["plain"] == vit_flops(AutoConfig.from_pretrained(str(smoke_artifacts / "plain"))) / 2
    assert macs["onnx-int8"] == macs["plain"] and macs["pruned-int8"] == macs["pruned-structured-40"]
    assert macs["lite0-int8"] == macs["distilled-lite0"] != macs["plain"]
    results = {name: {"model": {"p50_ms": 2.0}} for name in names}
    limit = limit_record(predictors, results, threads=1)
    plain = limit["rows"]["plain"]
    assert plain["precision"] == "fp32" and plain["gmac_per_s"] == round(macs["plain"] / 2e-3 / 1e9, 2)
    assert limit["rows"]["onnx-int8"]["precision"] == "int8" and limit["closest"] in names
