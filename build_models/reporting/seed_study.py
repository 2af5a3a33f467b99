"""The seed study's published figures (ViT-B/16 fine-tuned on cats_vs_dogs, Intel Xeon @ 2.20GHz),
set beside ours as ratios against each side's own plain row.

These are the only typed numbers in the report: they are the seed's, quoted as published, so a
reader can see where the two studies agree and where they differ.
"""

from __future__ import annotations

from typing import Any

# our variant name -> (seed method, size MB, F1, 1-sample mean ms, std ms)
SEED_ROWS: dict[str, tuple[str, float, float, float, float]] = {
    "plain": ("plain", 327.363, 1.000, 1090.0, 17.0),
    "dynamic-quant": ("dynamic quantization (qint8)", 84.413, 1.000, 413.0, 3.96),
    "pruned-unstructured": ("unstructured pruning (L1, 10%)", 327.363, 0.491, 622.0, 14.5),
    "pruned-structured": ("structured pruning (L1, 10%)", 327.363, 0.494, 708.0, 144.0),
    "transformers-pipeline": ("transformers pipeline", 327.363, 0.999, 783.0, 6.11),
    "optimum-pipeline": ("Optimum pipeline", 327.553, 0.999, 499.0, 64.2),
    "ort-onnx": ("ORTModel with ONNX", 327.341, 0.999, 362.0, 9.13),
}
SEED_NOTE = ("The seed gives no figures for TF clustering or OpenVINO; its distilled ResNet-18 'showed the same "
             "performance after 5 epochs' with about 8x fewer trainable parameters and was 26.39% faster.")


def _ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}" if value and reference else "n/a"


def seed_comparison_table(rows: list[dict[str, Any]], f1_applicable: bool = True) -> str:
    """Size ratio, F1 change and speedup against plain, the seed's beside ours (end-to-end and model)."""
    ours = {row["variant"]: row for row in rows if row["status"] == "ok"}
    plain = ours.get("plain")
    seed_plain = SEED_ROWS["plain"]
    lines = ["| variant | seed method | size vs plain (seed / ours) | F1 - plain F1 (seed / ours) | "
             "speedup vs plain (seed / ours e2e / ours model) |", "|---|---|---|---|---|"]
    for name, (method, size, f1, ms, _std) in SEED_ROWS.items():
        row = ours.get(name)
        if row is None or plain is None:
            continue
        our_f1 = f"{row['f1'] - plain['f1']:+.4f}" if f1_applicable and row["f1"] is not None else "n/a"
        e2e = _ratio(plain["end_to_end"].get("p50_ms"), row["end_to_end"].get("p50_ms"))
        model = _ratio(plain["model"].get("p50_ms"), row["model"].get("p50_ms"))
        lines.append(f"| {name} | {method} | {size / seed_plain[1]:.2f} / {_ratio(row['size_mb'], plain['size_mb'])} "
                     f"| {f1 - seed_plain[2]:+.3f} / {our_f1} | {seed_plain[3] / ms:.2f} / {e2e} / {model} |")
    return "\n".join(lines) + "\n\n" + SEED_NOTE
