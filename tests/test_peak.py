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
    no faster instruction (measured here: int8 32 GMAC/s against fp32 74), so there is no order to check."""
    from vitcore.hardware import cpu_facts

    flags = set(cpu_facts()["flags"])
    if not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        pytest.skip(f"no VNNI or AMX int8 on this CPU ({' '.join(sorted(flags))}): int8 is not expected to win")
    peaks = machine_peaks(flags, size=1024)
    ordered = [peaks[p]["gmac_per_s"] for p in ("int8", "bf16", "fp32") if peaks[p]["applicable"]]
    assert ordered == sorted(ordered, reverse=True), peaks
