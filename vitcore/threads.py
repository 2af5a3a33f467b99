"""Thread settings for every runtime, set in one place and recorded with each measurement."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The CPU limit of this container in whole cores (rounded up), or None when there is none.

    A container limited to 2 CPUs on a 64-core host still sees 64 cores in its affinity mask;
    "all cores" must mean the limit, or every runtime oversubscribes it.
    """
    try:
        if (root / "cpu.max").exists():  # cgroup v2: "<quota> <period>" or "max <period>"
            quota, period = (root / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
        quota_file, period_file = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
        if quota_file.exists() and period_file.exists():  # cgroup v1: quota -1 = no limit
            quota_us, period_us = int(quota_file.read_text()), int(period_file.read_text())
            return None if quota_us <= 0 else max(1, math.ceil(quota_us / period_us))
    except (OSError, ValueError):
        return None
    return None


def _cores() -> int:
    visible = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit()
    return min(visible, limit) if limit else visible


@dataclass(frozen=True)
class ThreadSettings:
    """Defaults favour single-request latency: every core on one request, no inter-op parallelism."""

    torch_intra_op: int = 0  # 0 = all cores
    torch_inter_op: int = 1
    ort_intra_op: int = 0
    ort_inter_op: int = 1
    openvino_threads: int = 0
    openvino_hint: str = "LATENCY"
    openvino_streams: int = 0  # 0 = the plugin's choice for the hint
    tf_intra_op: int = 0
    tf_inter_op: int = 1

    @classmethod
    def for_every_runtime(cls, threads: int, **others: Any) -> ThreadSettings:
        """One intra-op thread count for every runtime (0 = all cores); ``others`` set the remaining fields."""
        return cls(torch_intra_op=threads, ort_intra_op=threads, openvino_threads=threads, tf_intra_op=threads,
                   **others)

    def resolved(self) -> ThreadSettings:
        def all_cores(count: int) -> int:
            return count or _cores()

        return ThreadSettings(
            torch_intra_op=all_cores(self.torch_intra_op), torch_inter_op=all_cores(self.torch_inter_op),
            ort_intra_op=all_cores(self.ort_intra_op), ort_inter_op=all_cores(self.ort_inter_op),
            openvino_threads=all_cores(self.openvino_threads), openvino_hint=self.openvino_hint,
            openvino_streams=self.openvino_streams,
            tf_intra_op=all_cores(self.tf_intra_op), tf_inter_op=all_cores(self.tf_inter_op),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self.resolved())

    def apply_torch(self) -> None:
        import torch

        resolved = self.resolved()
        torch.set_num_threads(resolved.torch_intra_op)
        if torch.get_num_interop_threads() == resolved.torch_inter_op:
            return
        try:
            torch.set_num_interop_threads(resolved.torch_inter_op)
        except RuntimeError:  # settable only before the first inter-op parallel work in the process
            log.warning("torch inter-op threads stay at %d (asked for %d): already fixed in this process",
                        torch.get_num_interop_threads(), resolved.torch_inter_op)


def torch_applied_settings(device: str = "cpu") -> dict[str, Any]:
    """What torch actually runs with, read back from torch."""
    import torch

    return {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads(),
            "device": device}
