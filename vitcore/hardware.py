"""What machine a figure was measured on: CPU model, cores, and the ISA features that decide int8/bf16 speed."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vitcore.backends.base import Predictor
    from vitcore.threads import ThreadSettings

PACKAGES = ("torch", "transformers", "optimum", "optimum-onnx", "optimum-intel", "onnx", "onnxruntime",
            "openvino", "nncf", "tensorflow-cpu", "tf-keras", "tensorflow-model-optimization", "datasets", "numpy")
# Flags (as /proc/cpuinfo and lscpu spell them) that change which int8 / bf16 kernels a runtime can use.
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
                  "amx_int8", "amx_bf16")


def _cpuinfo() -> dict[str, str]:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return {}
    fields: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            break  # the first processor describes them all
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_class(flags: list[str] | set[str]) -> str:
    """The class a build's budget is stated for: "AMX", "AVX-512" (with or without bf16/VNNI) or "AVX2"."""
    present = set(flags)
    if "amx_bf16" in present:
        return "AMX"
    if "avx512f" in present:
        return "AVX-512 with bf16" if "avx512_bf16" in present else "AVX-512"
    return "AVX2" if "avx2" in present else "pre-AVX2"


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_facts() -> dict[str, Any]:
    """CPU model, usable cores and the relevant ISA flags; the int8/bf16 class it falls in."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    present = [flag for flag in RELEVANT_FLAGS if flag in flags]
    if {"amx_int8", "amx_tile"} <= flags:
        int8_class = "AMX int8"
    elif "avx512_vnni" in flags or "avx_vnni" in flags:
        int8_class = "VNNI int8"
    elif "avx2" in flags:
        int8_class = "AVX2 only (no VNNI): int8 gains little"
    else:
        int8_class = "unknown"
    return {"model": info.get("model name", platform.processor() or "unknown"), "machine": platform.machine(),
            "usable_cores": usable_cores(), "logical_cpus": os.cpu_count(), "flags": present,
            "int8_class": int8_class, "bf16_native": "avx512_bf16" in flags or "amx_bf16" in flags}


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine_record(threads: ThreadSettings, predictors: dict[str, Predictor]) -> dict[str, Any]:
    """What a latency table was measured on: the CPU, library versions, requested and applied settings."""
    return {"cpu": cpu_facts(), "packages": package_versions(), "threads_requested": threads.as_dict(),
            "applied": {name: predictor.applied_settings() for name, predictor in predictors.items()}}
