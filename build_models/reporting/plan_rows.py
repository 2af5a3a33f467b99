"""The plan printed before the build against what each phase then took (report section and README block)."""

from __future__ import annotations

from typing import Any


def measured_minutes(phase: str, data: dict[str, Any]) -> float | None:
    """What a planned phase took, read from the manifest; None when this invocation did not run it."""
    base = data.get("base_model", {})
    if phase == "teacher":
        return (base.get("teacher") or {}).get("minutes")
    if phase == "base training":
        return base.get("training", {}).get("minutes")
    if phase == "cascade":
        seconds = (data.get("cascade") or {}).get("seconds")
        return None if seconds is None else seconds / 60
    if phase == "latency table":
        seconds = data.get("latency", {}).get("seconds")
        return None if seconds is None else seconds / 60
    entry = data.get("variants", {}).get(phase)
    if not entry or entry.get("build_seconds") is None:
        return None
    return (entry["build_seconds"] + entry.get("eval_seconds", 0.0)) / 60


def plan_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    plan = data.get("plan") or {}
    return [{"phase": p["name"], "planned_minutes": p["minutes"], "basis": p["basis"],
             "measured_minutes": None if p["basis"] == "done" else measured_minutes(p["name"], data)}
            for p in plan.get("phases", [])]


def plan_table(rows: list[dict[str, Any]], plan: dict[str, Any], took_minutes: float | None) -> str:
    if not rows:
        return ""
    lines = ["| phase | planned min | basis | measured min |", "|---|---|---|---|"]
    for row in rows:
        measured = "-" if row["measured_minutes"] is None else f"{row['measured_minutes']:.1f}"
        lines.append(f"| {row['phase']} | {row['planned_minutes']:.1f} | {row['basis']} | {measured} |")
    took = "-" if took_minutes is None else f"{took_minutes:.1f}"
    lines.append(f"| **total** (the invocation's wall time) | {plan['total_minutes']:.1f} | | {took} |")
    return "\n".join(lines)
