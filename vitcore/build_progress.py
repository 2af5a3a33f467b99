"""``artifacts/build-progress.json``: where a running build is (its plan, each step's state, the phase now),
written by the build at every step and read by a service that serves the variants while they are built."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

PROGRESS_FILE = "build-progress.json"
PREPARING = "preparing"  # before the plan: reading the dataset, measuring this machine's step costs
STEP_STATES = ("queued", "running", "done", "failed", "skipped")


class BuildProgress:
    """The build's side: records the plan and each step as it starts and ends (atomically, so a reader never
    sees half a file)."""

    def __init__(self, root: Path) -> None:
        self.path = root / PROGRESS_FILE
        self.data: dict[str, Any] = {"state": "running", "phase": PREPARING, "pid": os.getpid(),
                                     "started": time.time(), "steps": []}

    def begin(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write()

    def planned(self, phases: list[dict[str, Any]]) -> None:
        """The plan's phases ({"name", "minutes", "basis"}); those already built count as done."""
        self.data["steps"] = [{"name": p["name"], "minutes": float(p["minutes"]),
                               "state": "done" if p.get("basis") == "done" else "queued", "seconds": None}
                              for p in phases]
        self.data["planned_at"] = time.time()
        self._write()

    def step(self, name: str, *with_it: str) -> None:
        """``name`` (and the steps ``with_it``, done by the same code) running from now."""
        self.data["phase"] = name
        for entry in self._entries(name, with_it):
            entry["state"], entry["started"] = "running", time.time()
        self._write()

    def step_done(self, name: str, *with_it: str, state: str = "done") -> None:
        for entry in self._entries(name, with_it):
            entry["state"] = state
            if entry.get("started"):
                entry["seconds"] = round(time.time() - entry["started"], 1)
        self._write()

    def finish(self, error: str | None = None) -> None:
        self.data.update(state="failed" if error else "done", phase="failed" if error else "done",
                         error=error, finished=time.time())
        self._write()

    def _entries(self, name: str, with_it: tuple[str, ...]) -> list[dict[str, Any]]:
        """The steps ``name`` (added when the plan did not name it) and those of ``with_it`` the plan names."""
        steps = {entry["name"]: entry for entry in self.data["steps"]}
        if name not in steps:
            steps[name] = {"name": name, "minutes": 0.0, "state": "queued", "seconds": None}
            self.data["steps"].append(steps[name])
        return [steps[each] for each in (name, *with_it) if each in steps]

    def _write(self) -> None:
        tmp = self.path.with_name(f".{PROGRESS_FILE}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)


def read_progress(root: Path) -> dict[str, Any] | None:
    """The build's last record, or None when there is none (or it cannot be read: the build rewrites it)."""
    try:
        data: dict[str, Any] = json.loads((root / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data


def progress_summary(data: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """Phase, percent of the planned minutes done and an ETA: the planned minutes left, scaled by how fast the
    finished steps went against their plan (once a minute of plan is done, before that the plan itself)."""
    now = time.time() if now is None else now
    steps = data.get("steps") or []
    todo = [s for s in steps if not (s["state"] == "done" and s.get("seconds") is None)]  # not built before
    planned = sum(s["minutes"] for s in todo)
    finished = [s for s in todo if s["state"] in ("done", "failed", "skipped")]
    done_minutes = sum(s["minutes"] for s in finished)
    running = [s for s in todo if s["state"] == "running"]
    spent = sum(s.get("seconds") or 0.0 for s in finished) / 60
    pace = spent / done_minutes if done_minutes >= 1.0 else 1.0
    if running:  # the running steps count up to their planned minutes
        in_step = (now - min(s.get("started") or now for s in running)) / 60 / pace
        done_minutes += min(in_step, sum(s["minutes"] for s in running))
    percent = 100.0 * done_minutes / planned if planned > 0 else 0.0
    left = max(planned - done_minutes, 0.0) * pace
    finished_state = data.get("state") in ("done", "failed")
    return {
        "state": data.get("state"), "phase": data.get("phase"),
        "percent": 100.0 if data.get("state") == "done" else round(min(percent, 99.9), 1),
        "eta_s": None if finished_state or not steps else round(left * 60),
        "elapsed_s": round((data.get("finished") or now) - data.get("started", now)),
        "planned_minutes": round(planned, 1), "error": data.get("error"),
        "steps": [{"name": s["name"], "state": s["state"], "planned_minutes": round(s["minutes"], 2),
                   "seconds": s.get("seconds")} for s in steps],
    }
