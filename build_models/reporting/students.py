"""The distillation rows compared as the seed compares them: each student against the ViT it learned from.

F1, parameters and size come from the manifest; speed ratios from the build's one latency run, in
which the teacher (plain) and the students were timed side by side. Every line is generated.
"""

from __future__ import annotations

from typing import Any

HEADER = ("| student | F1 student / teacher (points) | parameters student / teacher | size MB student / teacher | "
          "speed vs teacher (model / e2e) | how it was trained |")


def _p50(row: dict[str, Any], mode: str) -> float | None:
    value = row.get(mode, {}).get("p50_ms")
    return float(value) if value else None


def _speed(student: dict[str, Any], teacher: dict[str, Any], mode: str) -> float | None:
    ours, theirs = _p50(student, mode), _p50(teacher, mode)
    return None if ours is None or theirs is None else theirs / ours


def _training(build: dict[str, Any], source: str | None) -> str:
    recipe = build.get("distillation")
    if not recipe:
        return f"{build.get('format', 'int8')} of {source}" if source else build.get("format", "")
    teacher = recipe.get("teacher_logits", {})
    resolution = teacher.get("key", {}).get("resolution", ["?"])[0]
    cost = "cache reused" if teacher.get("reused") else f"{teacher.get('minutes')} min"
    return (f"{build.get('init')}; {recipe['images']} photos at {recipe['resolution']} px, {recipe['epochs']} epochs, "
            f"{recipe['minutes']} min; teacher logits at {resolution} px, "
            f"{recipe.get('teacher_passes_per_image', 1)} pass per photo in this build "
            f"({cost})")


def student_rows(manifest_variants: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per variant whose build names a teacher, with its ratios against plain (the teacher)."""
    by_name = {row["variant"]: row for row in rows if row.get("status") == "ok"}
    teacher = by_name.get("plain")
    out = []
    for name, row in by_name.items():
        build = manifest_variants.get(name, {}).get("build", {})
        if not teacher or "teacher_parameters" not in build:
            continue
        f1, teacher_f1 = row.get("f1"), teacher.get("f1")
        out.append({
            "student": name, "f1": f1, "teacher_f1": teacher_f1,
            "f1_points": None if f1 is None or teacher_f1 is None else round((f1 - teacher_f1) * 100, 2),
            "parameters": build.get("parameters"), "teacher_parameters": build["teacher_parameters"],
            "size_mb": row.get("size_mb"), "teacher_size_mb": teacher.get("size_mb"),
            "speed_model": _speed(row, teacher, "model"), "speed_e2e": _speed(row, teacher, "end_to_end"),
            "training": _training(build, _int8_source(name)),
        })
    return out


def _int8_source(name: str) -> str | None:
    from vitcore.catalogue import get_variant

    depends = get_variant(name).depends_on
    return depends[0] if depends else None


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _f1(entry: dict[str, Any]) -> str:
    if entry["f1"] is None or entry["teacher_f1"] is None:
        return "n/a (untrained)"
    return f"{entry['f1']:.4f} / {entry['teacher_f1']:.4f} ({entry['f1_points']:+.2f})"


def distillation_table(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return ""
    lines = [HEADER, "|---|---|---|---|---|---|"]
    for e in entries:
        lines.append(f"| {e['student']} | {_f1(e)} | {e['parameters']:,} / {e['teacher_parameters']:,} | "
                     f"{e['size_mb']:.2f} / {e['teacher_size_mb']:.2f} | "
                     f"{_ratio(e['speed_model'])} / {_ratio(e['speed_e2e'])} | {e['training']} |")
    lines += ["", *distillation_verdicts(entries)]
    return "\n".join(lines)


def distillation_verdicts(entries: list[dict[str, Any]]) -> list[str]:
    """One generated line per student that is not faster than its teacher, and per one more than a point behind."""
    verdicts = []
    for e in entries:
        if e["speed_model"] is not None and e["speed_model"] < 1.0:
            verdicts.append(f"- `{e['student']}` runs at {e['speed_model']:.2f}x its teacher's model speed on this "
                            f"profile: the teacher has {e['teacher_parameters'] / 1e6:.1f} M parameters, the student "
                            f"{e['parameters'] / 1e6:.1f} M, so here the student is no speed-up.")
        if e["f1_points"] is not None and e["f1_points"] < -1.0:
            verdicts.append(f"- `{e['student']}` is {-e['f1_points']:.2f} F1 points behind its teacher, outside the "
                            "1-point goal.")
    return verdicts
