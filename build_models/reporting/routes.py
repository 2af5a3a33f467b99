"""The study's two routed rows, ``auto`` and ``cascade``, and the F1-against-latency plot of the cascade.

``auto`` is what ``/predict/auto`` answers with under its default budget (none: the most accurate
variant by validation F1, ties to the faster), reported with its test F1. ``cascade`` is the build's
validation-chosen pair, scored on the test split; its mean latency is computed from the measured
end-to-end means of the pair and the measured escalation rate (every image pays the first variant,
escalated ones the second too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vitcore.manifest import comparable_f1, selection_basis, selection_f1


def _e2e_mean(data: dict[str, Any], name: str) -> float | None:
    result = data.get("latency", {}).get("results", {}).get(name, {})
    value = result.get("end_to_end", {}).get("mean_ms")
    return None if value is None else float(value)


def route_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """``auto`` and ``cascade`` beside the variants, with F1, interval and mean end-to-end latency."""
    scored = {name: entry for name, entry in data.get("variants", {}).items()
              if entry.get("status") == "ok" and comparable_f1(data, name) is not None
              and selection_f1(data, name) is not None and _e2e_mean(data, name) is not None}
    if not scored:
        return []
    auto = max(scored, key=lambda n: (selection_f1(data, n) or 0.0, -(_e2e_mean(data, n) or 0.0)))
    plain_ms = _e2e_mean(data, "plain")
    rows = [{"route": "auto", "answers": auto, "f1": scored[auto]["metrics"]["f1"],
             "f1_ci95": scored[auto]["metrics"].get("f1_ci95"), "mean_ms": _e2e_mean(data, auto),
             "size_mb": scored[auto].get("size_mb"),
             "how": f"default budget: the most accurate by {selection_basis(data)}; test F1 shown"}]
    cascade = data.get("cascade") or {}
    if "test" in cascade:
        test = cascade["test"]
        rows.append({"route": "cascade", "answers": f"{cascade['first']} → {cascade['then']}", "f1": test["f1"],
                     "f1_ci95": test.get("f1_ci95"), "mean_ms": test["mean_ms"],
                     "size_mb": sum(scored.get(n, {}).get("size_mb") or 0 for n in (cascade["first"], cascade["then"])),
                     "how": f"below calibrated p {cascade['threshold']:.3f}: {test['escalation_rate']:.1%} escalated "
                            f"(mean latency computed from the measured means)"})
    held_out = not data.get("base_model", {}).get("evaluation_overlap")
    for row in rows:
        row.update({} if held_out else {"held_out": False})
        row["speedup_vs_plain_e2e_mean"] = round(plain_ms / row["mean_ms"], 2) if plain_ms and row["mean_ms"] else None
    return rows


def route_table_lines(routes: list[dict[str, Any]], columns: int) -> list[str]:
    """Rows for the study table (same columns): method, size, F1, model p50, end-to-end, the rest."""
    lines = []
    for row in routes:
        interval = row.get("f1_ci95")
        f1 = f"{row['f1']:.4f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "") + (
            " †" if row.get("held_out") is False else "")
        cells = [f"**{row['route']}** ({row['answers']}; {row['how']})", f"{row['size_mb']:.2f}", f1, "-",
                 f"mean {row['mean_ms']:.2f}", "-",
                 f"- / {row['speedup_vs_plain_e2e_mean']:.2f}x (means)" if row["speedup_vs_plain_e2e_mean"] else "-"]
        lines.append("| " + " | ".join(cells + ["-"] * (columns - len(cells))) + " |")
    return lines


def write_route_plot(data: dict[str, Any], path: Path) -> bool:
    """F1 against mean end-to-end latency: every variant, the cascade's validation frontier, the cascade."""
    means = {name: _e2e_mean(data, name) for name in data.get("variants", {})}
    points = [(name, float(ms), f1) for name, entry in data.get("variants", {}).items()
              if entry.get("status") == "ok" and (f1 := comparable_f1(data, name)) is not None
              and (ms := means[name])]
    cascade = data.get("cascade") or {}
    if not points or "test" not in cascade:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    for name, ms, f1 in points:
        ax.scatter(ms, f1, color="tab:blue", alpha=0.6)
        ax.annotate(name, (ms, f1), xytext=(4, 4), textcoords="offset points", fontsize=7)
    frontier = cascade.get("frontier", [])
    ax.plot([p["mean_ms"] for p in frontier], [p["f1"] for p in frontier], "-", color="tab:green", lw=1,
            label=f"cascade {cascade['first']} → {cascade['then']}, thresholds 0.5-1 (validation)")
    ax.scatter(cascade["test"]["mean_ms"], cascade["test"]["f1"], marker="*", s=220, color="tab:red",
               label=f"cascade as chosen (test): threshold {cascade['threshold']:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("mean end-to-end latency, 1 image (ms, log scale)")
    ax.set_ylabel("F1")
    ax.set_title(f"F1 against latency: single variants and the cascade ({data.get('profile', '')} profile)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def cascade_block(report: dict[str, Any]) -> str:
    """The cascade the build chose (validation) and what it measured (test), and each candidate's calibration."""
    cascade = report.get("cascade") or {}
    if "test" not in cascade:
        return f"(no cascade in this build{': ' + cascade['error'] if 'error' in cascade else ''})"
    valid, test = cascade["validation"], cascade["test"]
    then_row: dict[str, Any] = next((r for r in report["rows"] if r["variant"] == cascade["then"]), {})
    then_ms, then_f1 = test["then_mean_ms"], then_row.get("f1")
    lines = [f"- chosen on {valid['images']} validation images: `{cascade['first']}` answers, `{cascade['then']}` "
             f"when the first's calibrated top probability is below {cascade['threshold']:.4f}; expected F1 "
             f"{valid['f1']:.4f} (the accurate one alone: {valid['then_f1']:.4f}; tolerance "
             f"{valid['tolerance'] * 100:.1f} points, {'met' if valid['target_met'] else 'NOT met'}) at "
             f"{valid['expected_mean_ms']:.2f} ms, {valid['escalation_rate']:.1%} escalated",
             f"- measured on {test['images']} test images: F1 **{test['f1']:.4f}** [{test['f1_ci95'][0]:.3f}, "
             f"{test['f1_ci95'][1]:.3f}] against `{cascade['then']}` alone "
             f"{'n/a' if then_f1 is None else format(then_f1, '.4f')} "
             f"({'n/a' if then_f1 is None else format((test['f1'] - then_f1) * 100, '+.2f')} points), mean "
             f"end-to-end **{test['mean_ms']:.2f} ms** against {then_ms:.2f} ms "
             f"(**{test['mean_ms'] / then_ms:.0%}** of it), {test['escalation_rate']:.1%} escalated; "
             f"{test['latency_basis']}", "",
             "| variant | validation ECE | temperature | ECE at that temperature |", "|---|---|---|---|"]
    for name, calibration in (report.get("calibration") or {}).items():
        lines.append(f"| {name} | {calibration['ece']:.4f} | {calibration['temperature']:g} | "
                     f"{calibration['ece_calibrated']:.4f} |")
    return "\n".join(lines)
