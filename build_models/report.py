"""artifacts/report.md, report.json and report.png from the manifest and its latency run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from build_models.manifest import Manifest
from build_models.registry import list_variants

COLUMNS = ("Method", "Model Size (MB)", "F1", "Inference Time (1 sample)", "Parameters", "Sparsity",
           "Speedup vs plain", "Runtime")


def report_rows(manifest: Manifest) -> list[dict[str, Any]]:
    latency = manifest.data.get("latency", {}).get("results", {})
    order = {name: i for i, name in enumerate(list_variants())}
    rows = []
    for name, entry in sorted(manifest.variants.items(), key=lambda kv: order.get(kv[0], 999)):
        build = entry.get("build", {})
        stats = latency.get(name, {})
        rows.append({
            "variant": name, "runtime": entry.get("runtime"), "status": entry.get("status"),
            "size_mb": entry.get("size_mb"), "size_note": build.get("size_note"),
            "f1": entry.get("metrics", {}).get("f1"), "accuracy": entry.get("metrics", {}).get("accuracy"),
            "latency_mean_ms": stats.get("mean_ms"), "latency_std_ms": stats.get("std_ms"),
            "speedup_vs_plain": stats.get("speedup_vs_plain"), "parameters": build.get("parameters"),
            "sparsity": build.get("sparsity"), "error": entry.get("error"),
        })
    return rows


def _fmt(value: Any, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def markdown_table(rows: list[dict[str, Any]], f1_applicable: bool = True) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {row['variant']} | failed: {row['error']} |" + " |" * (len(COLUMNS) - 2))
            continue
        latency = (f"{row['latency_mean_ms']:.1f} ± {row['latency_std_ms']:.1f} ms"
                   if row["latency_mean_ms"] is not None else "not measured")
        size = _fmt(row["size_mb"], ".2f") + (f" ({row['size_note']})" if row["size_note"] else "")
        cells = [row["variant"], size, _fmt(row["f1"], ".4f") if f1_applicable else "n/a (random init)",
                 latency, _fmt(row["parameters"], ",d"), _fmt(row["sparsity"], ".1%", "-"),
                 _fmt(row["speedup_vs_plain"], ".2f") + "x" if row["speedup_vs_plain"] else "-",
                 row["runtime"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def write_plot(rows: list[dict[str, Any]], path: Path) -> bool:
    points = [r for r in rows if r["status"] == "ok" and r["latency_mean_ms"] and r["f1"] is not None]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    largest = max(r["size_mb"] or 1 for r in points)
    for r in points:
        ax.scatter(r["latency_mean_ms"], r["f1"], s=40 + 800 * (r["size_mb"] or 0) / largest, alpha=0.6)
        ax.annotate(r["variant"], (r["latency_mean_ms"], r["f1"]), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xlabel("latency, 1 image (ms, mean)")
    ax.set_ylabel("F1 on the test split")
    ax.set_title("Latency vs F1 (marker area = model size on disk)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def base_model_story(base: dict[str, Any]) -> str:
    """One honest line on where the base model's weights came from and how it was trained."""
    training = base.get("training", {})
    weights = training.get("weights", "random init")
    if training.get("recipe") == "none":
        return f"{weights}; not trained ({training.get('reason', 'no budget')})"
    distilled = f", distilled from the teacher ({training['distillation']})" if base.get("teacher") else ""
    return (f"{weights}; {training.get('recipe')} for {training.get('epochs', 0):.1f} epochs "
            f"({training.get('steps')} steps, {training.get('minutes', 0):.1f} min){distilled}, "
            f"best validation accuracy {training.get('best_val_accuracy', 0):.4f}")


def teacher_line(teacher: dict[str, Any] | None) -> str:
    if not teacher:
        return ""
    return (f"- teacher (a build input, not served; a CNN): {teacher['model']}, {teacher['head']}; "
            f"test F1 {teacher['test_metrics']['f1']:.4f}, zero-shot accuracy by normalisation "
            f"{json.dumps(teacher['zero_shot_accuracy'])}")


def write_report(manifest: Manifest) -> Path:
    rows = report_rows(manifest)
    base = manifest.data.get("base_model", {})
    training = base.get("training", {})
    # F1 means nothing only for a random-init model that was never trained (the vit-base timing profile).
    f1_applicable = not (training.get("recipe") == "none" and training.get("weights", "random init") == "random init")
    latency = manifest.data.get("latency", {})
    root = manifest.root
    plotted = f1_applicable and write_plot(rows, root / "report.png")
    split = manifest.data.get("dataset", {}).get("split", {})
    lines = [
        f"# vitserve report: profile `{manifest.data.get('profile')}`", "",
        f"- base model: `{base.get('source')}`: {base_model_story(base)}",
        teacher_line(base.get("teacher")),
        f"- dataset: `{manifest.data.get('dataset', {}).get('source')}`, test split "
        f"{split.get('test', {}).get('count')} images (sha256 {str(split.get('test', {}).get('sha256'))[:16]}...)",
        f"- latency: {json.dumps(latency.get('config', {}))}, threads {json.dumps(latency.get('threads', {}))}",
        f"- fp32 floor: {json.dumps(latency['fp32_floor'])}" if "fp32_floor" in latency else "",
        "", markdown_table(rows, f1_applicable), "",
    ]
    if plotted:
        lines += ["![latency vs F1](report.png)", ""]
    (root / "report.md").write_text("\n".join(lines))
    (root / "report.json").write_text(json.dumps({"rows": rows, "latency": latency}, indent=2))
    return root / "report.md"
