"""The latency-vs-F1 plot: log latency, marker area by size (with a legend), the Pareto front, and
labels placed so that they do not overlap."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both latency (lower) and F1 (higher), by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_f1 = [], float("-inf")
    for i in order:
        if points[i][1] > best_f1:
            front.append(i)
            best_f1 = points[i][1]
    return front


def _place_labels(ax: Any, xy: list[tuple[float, float]], names: list[str]) -> None:
    """Greedy placement in display space: try offsets around each point, keep the first free box."""
    from matplotlib.text import Text

    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    taken: list[Any] = []
    offsets = [(dx, dy) for dy in (6, -12, 18, -24, 30, -36, 42, -48, 56, -62) for dx in (6, -6)]
    for (x, y), name in sorted(zip(xy, names, strict=True), key=lambda p: -p[0][1]):
        for dx, dy in offsets:
            label = ax.annotate(name, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=8,
                                ha="left" if dx > 0 else "right",
                                arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"})
            label.update_positions(renderer)
            box = Text.get_window_extent(label, renderer).expanded(1.1, 1.2)  # the text only, not its leader
            if not any(box.overlaps(other) for other in taken):
                taken.append(box)
                break
            label.remove()
        else:
            taken.append(ax.annotate(name, (x, y), xytext=(10, 0), textcoords="offset points",
                                     fontsize=7).get_window_extent(renderer))


def _limit_lines(ax: Any, rows: list[dict[str, Any]], limit: dict[str, Any] | None) -> None:
    """The limit: plain's multiply-accumulates at each precision's GEMM peak, the fastest that model could run."""
    plain = next((r for r in rows if r["variant"] == "plain" and r.get("limit")), None)
    if not limit or plain is None:
        return
    styles = {"fp32": ":", "bf16": "-.", "int8": "-"}
    for precision, peak in limit["peaks"].items():
        if peak["applicable"]:
            ms = plain["limit"].get("macs", plain["limit"]["gmacs"] * 1e9) / 1e9 / peak["gmac_per_s"] * 1000
            ax.axvline(ms, color="0.2", lw=1, ls=styles.get(precision, ":"),
                       label=f"limit: plain's MACs at the {precision} peak ({ms:.2f} ms)")


def write_plot(rows: list[dict[str, Any]], path: Path, profile: str = "", limit: dict[str, Any] | None = None,
               ) -> bool:
    points = [r for r in rows if r["status"] == "ok" and r["model"].get("p50_ms") and r["f1"] is not None]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5))
    xy = [(r["model"]["p50_ms"], r["f1"]) for r in points]
    largest = max(r["size_mb"] or 1 for r in points)

    def area(size_mb: float) -> float:
        return 30 + 900 * size_mb / largest

    colors = {"pytorch": "tab:red", "onnxruntime": "tab:blue", "openvino": "tab:purple", "tensorflow": "tab:orange"}
    for r, (x, y) in zip(points, xy, strict=True):
        ax.scatter(x, y, s=area(r["size_mb"] or 0), alpha=0.45, color=colors.get(r["runtime"], "tab:gray"),
                   edgecolors="black", linewidths=0.5)
    front = pareto_front(xy)
    ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], "--", color="0.3", lw=1, label="Pareto front")
    _limit_lines(ax, points, limit)
    ax.set_xscale("log")
    from matplotlib.ticker import FormatStrFormatter

    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel("model latency, 1 image, p50 (ms, log scale)")
    ax.set_ylabel("F1 on the test split")
    ax.set_title(f"Latency vs F1{f' ({profile} profile)' if profile else ''}; marker area = size on disk")
    ax.grid(alpha=0.3, which="both")
    for size in sorted({round(largest, 0), round(largest / 4, 1), round(largest / 16, 1)}):
        ax.scatter([], [], s=area(size), color="0.8", edgecolors="black", linewidths=0.5, label=f"{size:g} MB")
    for runtime, color in colors.items():
        if any(r["runtime"] == runtime for r in points):
            ax.scatter([], [], s=30, color=color, label=runtime)
    ax.legend(loc="lower right", fontsize=8, labelspacing=1.2, borderpad=1)
    span = max(y for _, y in xy) - min(y for _, y in xy)
    ax.set_ylim(min(y for _, y in xy) - 0.15 * span - 0.005, max(y for _, y in xy) + 0.15 * span + 0.005)
    _place_labels(ax, xy, [r["variant"] for r in points])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
