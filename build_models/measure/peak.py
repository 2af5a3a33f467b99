"""This machine's sustained GEMM throughput per precision, through OpenVINO with the latency table's threads.

One square GEMM per precision, built as an OpenVINO model so that the CPU plugin picks the kernels it would
pick for a variant: fp32 (inference precision f32), int8 (u8 activations through a FakeQuantize, i8 weights
with a per-column scale, the pattern NNCF writes) and bf16 (inference precision bf16), the last only where
the CPU has AVX512_BF16 or AMX: elsewhere OpenVINO would quietly run it in fp32. The compiled model's
runtime precision is recorded beside each figure, so a GEMM that did not run as asked says so.

``python -m build_models.measure.peak`` prints the figures as JSON with the CPU flags they were measured on.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

PRECISIONS = ("fp32", "bf16", "int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
GEMM_LAYERS = ("FullyConnected", "MatMul")


def bf16_unavailable(flags: set[str]) -> str | None:
    """Why bf16 is not applicable on a CPU with ``flags`` (None where it is)."""
    if any(flag in flags for flag in BF16_FLAGS):
        return None
    return f"not applicable: the CPU has neither {' nor '.join(BF16_FLAGS)}, so OpenVINO would run it in fp32"


def gemm_model(size: int, precision: str) -> Any:
    """``x @ w`` for a [size, size] input and weight, in the pattern each precision runs as."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([size, size], np.float32, name="x")
    rng = np.random.default_rng(0)
    if precision == "int8":
        low, high = ops.constant(np.float32(0.0)), ops.constant(np.float32(4.0))
        activations = ops.fake_quantize(x, low, high, low, high, 256)
        weights = ops.multiply(ops.convert(ops.constant(rng.integers(-127, 128, (size, size)).astype(np.int8)),
                                           np.float32), ops.constant(np.full((1, size), 0.01, np.float32)))
        out = ops.matmul(activations, weights, False, False)
    else:
        out = ops.matmul(x, ops.constant(rng.normal(size=(size, size)).astype(np.float32)), False, False)
    return ov.Model([out], [x], f"gemm-{precision}")


def runtime_precisions(compiled: Any) -> list[str]:
    """The precisions the compiled model's GEMM layers run in."""
    found = []
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in GEMM_LAYERS:
            found.append(info["runtimePrecision"].astype(str))
    return found


def peak_gemm(precision: str, size: int = 1024, runs: int = 20, threads: int = 0) -> dict[str, Any]:
    """Best-of-``runs`` multiply-accumulates per second of one [size, size] GEMM in ``precision``."""
    import openvino as ov

    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(gemm_model(size, precision), "CPU", config)
    request = compiled.create_infer_request()
    inputs = np.random.default_rng(1).uniform(0.0, 4.0, (size, size)).astype(np.float32)
    for _ in range(3):
        request.infer({0: inputs})
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        request.infer({0: inputs})
        best = min(best, time.perf_counter() - started)
    return {"precision": precision, "gmac_per_s": round(size**3 / best / 1e9, 1), "gemm": f"{size}x{size}x{size}",
            "runtime_precision": sorted(set(runtime_precisions(compiled))), "best_ms": round(best * 1000, 3)}


def machine_peaks(flags: set[str], size: int = 1024, threads: int = 0) -> dict[str, Any]:
    """Every precision's peak on this machine, or why it is not applicable."""
    peaks: dict[str, Any] = {}
    for precision in PRECISIONS:
        reason = bf16_unavailable(flags) if precision == "bf16" else None
        peaks[precision] = {"precision": precision, "applicable": False, "reason": reason} if reason \
            else {**peak_gemm(precision, size, threads=threads), "applicable": True}
    return peaks


def main(argv: list[str] | None = None) -> int:
    from vitcore.hardware import cpu_facts

    parser = argparse.ArgumentParser(prog="python -m build_models.measure.peak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=0, help="0: OpenVINO's default (every usable core)")
    args = parser.parse_args(argv)
    cpu = cpu_facts()
    flags = set(cpu["flags"])
    print(json.dumps({"machine": cpu, "peaks": machine_peaks(flags, args.size, args.threads)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
