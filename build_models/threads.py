"""Thread settings for every runtime, set in one place and recorded with each measurement."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadSettings:
    """Defaults favour single-request latency: every core on one request, no inter-op parallelism."""

    torch_intra_op: int = 0  # 0 = all cores
    torch_inter_op: int = 1
    ort_intra_op: int = 0
    ort_inter_op: int = 1
    openvino_threads: int = 0
    openvino_hint: str = "LATENCY"
    tf_intra_op: int = 0
    tf_inter_op: int = 1

    def resolved(self) -> ThreadSettings:
        def all_cores(count: int) -> int:
            return count or _cores()

        return ThreadSettings(
            torch_intra_op=all_cores(self.torch_intra_op), torch_inter_op=all_cores(self.torch_inter_op),
            ort_intra_op=all_cores(self.ort_intra_op), ort_inter_op=all_cores(self.ort_inter_op),
            openvino_threads=all_cores(self.openvino_threads), openvino_hint=self.openvino_hint,
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
