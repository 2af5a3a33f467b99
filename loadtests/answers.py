"""A load run's /predict answers, counted in one place as they arrive.

Locust rewrites its stats CSV once a second and not after the run stops, so its final counts miss the last
second's answers and those finished during the stop timeout; counting "answered" from it and "answered by"
from the answers themselves made the two disagree. Here every answer is counted once by status and every
valid answer once by the variant that gave it: "answered" is the sum of "answered by".
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

LABELS = ("cat", "dog")
NO_LABEL = "200 without a label"


@dataclass
class AnswerCount:
    statuses: Counter[str] = field(default_factory=Counter)
    answered_by: Counter[str] = field(default_factory=Counter)
    first_s: float | None = None
    last_s: float | None = None

    def record(self, status: int, body: dict[str, Any] | None, asked: str, now: float | None = None) -> str | None:
        """Count one answer to a request for ``asked``; the failure to report, or None for a valid answer."""
        now = time.monotonic() if now is None else now
        self.first_s = now if self.first_s is None else self.first_s
        self.last_s = now
        if status != 200:
            self.statuses[str(status)] += 1
            return f"HTTP {status}"
        if not body or body.get("label") not in LABELS:
            self.statuses[NO_LABEL] += 1
            return "no label in the answer"
        self.statuses["200"] += 1
        self.answered_by[str(body.get("variant", asked))] += 1
        return None

    def as_dict(self) -> dict[str, Any]:
        seconds = 0.0 if self.first_s is None or self.last_s is None else self.last_s - self.first_s
        return {"statuses": dict(self.statuses), "answered_by": dict(self.answered_by), "seconds": round(seconds, 3)}


def answered_figures(record: dict[str, Any]) -> dict[str, Any]:
    """One run's record (``AnswerCount.as_dict``): answered, answered per second, refused (503), other 5xx and
    answered by variant, all from the same answers."""
    statuses, answered_by = record.get("statuses", {}), record.get("answered_by", {})
    answered = sum(answered_by.values())
    seconds = record.get("seconds") or 0.0
    return {"answered": answered, "answered req/s": round(answered / seconds, 1) if seconds else 0.0,
            "refused (503)": statuses.get("503", 0),
            "5xx": sum(count for status, count in statuses.items() if status.startswith("5")),
            "answered by": dict(answered_by)}
