"""The study's two routed rows, ``auto`` and ``cascade``, and the F1-against-latency plot of the cascade.

``auto`` is what ``/predict/auto`` answers with under its default budget (none: the most accurate
variant by measured F1, ties to the faster). ``cascade`` is the build's validation-chosen pair,
scored on the test split; its mean latency is computed from the measured end-to-end means of the pair
and the measured escalation rate (every image pays the first variant, escalated ones the second too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _e2e_mean(data: dict[str, Any], name: str) -> float | None:
    result = data.get("latency", {}).get("results", {}).get(name, {})
    value = result.get("end_to_end", {}).get("mean_ms")
    return None if value is None else float(value)


def route_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """``auto`` and ``cascade`` beside the variants, with F1, interval and mean end-to-end latency."""
    scored = {name: entry for name, entry in data.get("variants", {}).items()
              if entry.get("status") == "ok" and entry.get("metrics", {}).get("f1") is not None
              and _e2e_mean(data, name) is not None}
    if not scored:
        return []
    auto = max(scored, key=lambda n: (scored[n]["metrics"]["f1"], -(_e2e_mean(data, n) or 0.0)))
    plain_ms = _e2e_mean(data, "plain")
    rows = [{"route": "auto", "answers": auto, "f1": scored[auto]["metrics"]["f1"],
             "f1_ci95": scored[auto]["metrics"].get("f1_ci95"), "mean_ms": _e2e_mean(data, auto),
             "size_mb": scored[auto].get("size_mb"), "how": "default budget: the most accurate variant"}]
    cascade = data.get("cascade") or {}
    if "test" in cascade:
        test = cascade["test"]
        rows.append({"route": "cascade", "answers": f"{cascade['first']} → {cascade['then']}", "f1": test["f1"],
                     "f1_ci95": test.get("f1_ci95"), "mean_ms": test["mean_ms"],
                     "size_mb": sum(scored.get(n, {}).get("size_mb") or 0 for n in (cascade["first"], cascade["then"])),
                     "how": f"below calibrated p {cascade['threshold']:.3f}: {test['escalation_rate']:.1%} escalated "
                            f"(mean latency computed from the measured means)"})
    for row in rows:
        row["speedup_vs_plain_e2e_mean"] = round(plain_ms / row["mean_ms"], 2) if plain_ms and row["mean_ms"] else None
    return rows


def route_table_lines(routes: list[dict[str, Any]], columns: int) -> list[str]:
    """Rows for the study table (same columns): method, size, F1, model p50, end-to-end, the rest."""
    lines = []
    for row in routes:
        interval = row.get("f1_ci95")
        f1 = f"{row['f1']:.4f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")
        cells = [f"**{row['route']}** ({row['answers']}; {row['how']})", f"{row['size_mb']:.2f}", f1, "-",
                 f"mean {row['mean_ms']:.2f}", "-",
                 f"- / {row['speedup_vs_plain_e2e_mean']:.2f}x (means)" if row["speedup_vs_plain_e2e_mean"] else "-"]
        lines.append("| " + " | ".join(cells + ["-"] * (columns - len(cells))) + " |")
    return lines


def write_route_plot(data: dict[str, Any], path: Path) -> bool:
    """F1 against mean end-to-end latency: every variant, the cascade's validation frontier, the cascade."""
    means = {name: _e2e_mean(data, name) for name in data.get("variants", {})}
    points = [(name, float(ms), float(entry["metrics"]["f1"])) for name, entry in data.get("variants", {}).items()
              if entry.get("status") == "ok" and entry.get("metrics", {}).get("f1") is not None
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
